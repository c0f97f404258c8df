"""The papers' own figures, quoted once here so that every chapter compares with the same numbers.

Accuracies in %, ``(acc@1, acc@10)``; ``None`` where the paper's cell is empty. Source: Yu et al., "Fine-Grained
Instance-Level Sketch-Based Image Retrieval", IJCV 2020 (``../shared/papers``), Tables 3 and 4. The on-the-fly
figures (``ONTHEFLY_*``) are the tables of Bhunia et al., "Sketch Less for More", CVPR 2020 (its poster in
``../shared/papers``), in %. The adaptive figures (``ADAPTIVE_*``) are the poster's tables of Bhunia et al.,
"Adaptive Fine-Grained Sketch-Based Image Retrieval", ECCV 2022 (``../shared/papers``), in %.
"""
from __future__ import annotations

Figure = tuple[float, float] | None

#: IJCV 2020 Table 3, "Comparative results against baselines". "Triplet SN" rows are the paper's retuned figures;
#: "Triplet Att. SN" is DSSA (Song et al. ICCV 2017: attention, fusion and HOLEF on Sketch-a-Net); "Our model" is the
#: IJCV model on InceptionV3.
IJCV_TABLE3: dict[str, dict[str, Figure]] = {
    "QMUL-Shoe-V1": {"Dense-HOG + rankSVM": (23.48, 73.91), "Triplet SN": (52.17, 92.17),
                     "Triplet Att. SN": (61.74, 94.78), "Our model": (66.09, 94.78)},
    "QMUL-Chair-V1": {"Dense-HOG + rankSVM": (59.79, 96.90), "Triplet SN": (72.16, 98.96),
                      "Triplet Att. SN": (81.44, 95.88), "Our model": (91.75, 100.0)},
    "QMUL-Handbag": {"Dense-HOG + rankSVM": (15.5, 40.48), "Triplet SN": (39.9, 82.1),
                     "Triplet Att. SN": (49.4, 82.7), "Our model": (61.90, 89.29)},
    "QMUL-Shoe-V2": {"Dense-HOG + rankSVM": (11.63, 48.01), "Triplet SN": (30.93, 72.02),
                     "Triplet Att. SN": None, "Our model": (42.27, 82.18)},
    "QMUL-Chair-V2": {"Dense-HOG + rankSVM": (29.32, 75.31), "Triplet SN": (45.06, 86.42),
                      "Triplet Att. SN": None, "Our model": (69.14, 97.22)},
}

#: IJCV 2020 Table 4, "Contributions of the different components" (InceptionV3, pre-trained).
IJCV_TABLE4: dict[str, dict[str, Figure]] = {
    "QMUL-Shoe-V2": {"Base": (36.08, 81.15), "Base + attention": (31.37, 65.10), "Base + CFF": (38.59, 82.92),
                     "Full": (42.27, 82.18)},
    "QMUL-Chair-V2": {"Base": (57.41, 91.36), "Base + attention": (57.10, 88.58), "Base + CFF": (65.12, 94.75),
                      "Full": (69.14, 97.22)},
}

#: CVPR 2020 on-the-fly, "Quantitative results on different baselines": (m@A, m@B, A@5, A@10) per dataset.
ONTHEFLY_TABLE1: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "QMUL-Chair-V2": {"B1": (77.18, 29.04, 76.47, 88.13), "B2": (80.46, 28.07, 74.31, 86.69),
                      "B3": (76.99, 30.27, 76.47, 88.13), "B4": (81.24, 29.85, 75.14, 87.69),
                      "TS": (76.01, 27.64, 73.47, 85.13), "Ours": (85.44, 35.09, 76.34, 89.65)},
    "QMUL-Shoe-V2": {"B1": (80.12, 18.05, 65.69, 79.69), "B2": (79.72, 18.75, 61.79, 76.64),
                     "B3": (80.13, 18.46, 65.69, 79.69), "B4": (81.02, 19.50, 62.34, 77.24),
                     "TS": (77.12, 17.13, 62.67, 76.47), "Ours": (85.38, 21.44, 65.77, 79.63)},
}
#: CVPR 2020 on-the-fly, "Comparative study with different RL methods": (m@A, m@B) per dataset, keyed by our names.
ONTHEFLY_RL: dict[str, dict[str, tuple[float, float]]] = {
    "QMUL-Chair-V2": {"vpg": (80.36, 32.34), "ppo-ac-clip": (81.54, 33.71), "ppo-ac-kl": (80.99, 32.64),
                      "ppo-a-kl": (81.34, 33.01), "trpo": (83.21, 33.68), "ppo-a-clip": (85.44, 35.09)},
    "QMUL-Shoe-V2": {"vpg": (82.56, 19.67), "ppo-ac-clip": (83.47, 20.84), "ppo-ac-kl": (83.84, 20.04),
                     "ppo-a-kl": (83.51, 20.66), "trpo": (83.61, 20.31), "ppo-a-clip": (85.38, 21.44)},
}
#: CVPR 2020 on-the-fly, "Comparative study with candidate reward designs": (m@A, m@B), keyed by our reward names.
ONTHEFLY_REWARDS: dict[str, dict[str, tuple[float, float]]] = {
    "QMUL-Chair-V2": {"top1": (82.99, 32.46), "top5": (81.36, 31.94), "top10": (80.64, 30.57),
                      "neg-rank": (83.71, 32.84), "inv-sqrt-rank": (83.71, 33.97), "inv-rank": (84.33, 34.11),
                      "eq4": (85.44, 35.09)},
    "QMUL-Shoe-V2": {"top1": (82.24, 19.87), "top5": (81.74, 19.37), "top10": (80.87, 19.08),
                     "neg-rank": (83.81, 20.71), "inv-sqrt-rank": (83.67, 20.49), "inv-rank": (84.07, 20.54),
                     "eq4": (85.38, 21.44)},
}

#: ECCV 2022 adaptive, "Quantitative evaluation ... on 4 different competitors" (and the first table): (acc@1, acc@5)
#: per setup and k, ``None`` where the poster's cell is empty. "no adaptation" is the poster's "Our Baseline".
ADAPTIVE_TABLE: dict[str, dict[str, dict[int, tuple[float, float | None]]]] = {
    "Sketchy (category level)": {
        "no adaptation": {1: (18.4, 37.3), 5: (18.4, 37.3), 10: (18.4, 37.3)},
        "fine-tuning": {1: (18.4, 37.3), 5: (18.5, 37.5), 10: (18.6, 37.5)},
        "MAML": {1: (19.5, 38.7), 5: (22.8, 42.3), 10: (26.4, 48.9)},
        "sign-MAML": {1: (19.1, 38.2), 5: (20.5, 39.6)},
        "ANIL": {1: (19.7, 38.9), 5: (23.2, 42.8), 10: (26.9, 48.3)},
        "ours": {1: (21.8, 42.5), 5: (28.1, 51.8), 10: (32.7, 53.5)},
    },
    "Shoe-V2 (user level)": {
        "no adaptation": {1: (33.7, 70.2), 5: (33.7, 70.2)},
        "fine-tuning": {1: (33.7, 70.2), 5: (33.8, 70.2)},
        "MAML": {1: (34.2, 70.7), 5: (35.5, 74.6)},
        "sign-MAML": {1: (33.8, 69.6), 5: (34.1, 70.8)},
        "ANIL": {1: (34.5, 70.9), 5: (35.7, 75.3)},
        "ours": {1: (34.9, None), 5: (38.3, 76.6)},
    },
}
#: ECCV 2022 adaptive: the upper bound (acc@1, acc@5), trained on the new categories' own training data.
ADAPTIVE_UPPER_BOUND: dict[str, tuple[float, float]] = {"Sketchy (category level)": (29.8, 53.7)}
#: ECCV 2022 adaptive, "Ablative study judging design choice": acc@1 at k = 5 with the regularisers on (True) or off.
ADAPTIVE_ABLATION: dict[str, list[tuple[dict[str, bool], float]]] = {
    "Sketchy (category level)": [({"L_D": True, "L_S": True, "L_C": True}, 28.1),
                                 ({"L_D": False, "L_S": True, "L_C": True}, 26.3),
                                 ({"L_D": False, "L_S": False, "L_C": True}, 23.7),
                                 ({"L_D": False, "L_S": False, "L_C": False}, 16.5)],
    "Shoe-V2 (user level)": [({"L_D": True, "L_ud": True}, 38.3), ({"L_D": False, "L_ud": True}, 37.1),
                             ({"L_D": False, "L_ud": False}, 35.8)],
}

#: The name our ``results/`` records give each real dataset, and its name in the tables above.
DATASET_NAMES = {"shoes": "QMUL-Shoe-V1", "ChairV2": "QMUL-Chair-V2"}


def quoted(figure: Figure) -> str:
    """``"52.17 / 92.17"``, or ``"not reported"`` for an empty cell."""
    return "not reported" if figure is None else f"{figure[0]:.2f} / {figure[1]:.2f}"


__all__ = ["ADAPTIVE_ABLATION", "ADAPTIVE_TABLE", "ADAPTIVE_UPPER_BOUND", "DATASET_NAMES", "IJCV_TABLE3",
           "IJCV_TABLE4", "quoted"]
