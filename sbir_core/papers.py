"""The papers' own figures, quoted once here so that every chapter compares with the same numbers.

Accuracies in %, ``(acc@1, acc@10)``; ``None`` where the paper's cell is empty. Source: Yu et al., "Fine-Grained
Instance-Level Sketch-Based Image Retrieval", IJCV 2020 (``../shared/papers``), Tables 3 and 4.
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

#: The name our ``results/`` records give each real dataset, and its name in the tables above.
DATASET_NAMES = {"shoes": "QMUL-Shoe-V1", "ChairV2": "QMUL-Chair-V2"}


def quoted(figure: Figure) -> str:
    """``"52.17 / 92.17"``, or ``"not reported"`` for an empty cell."""
    return "not reported" if figure is None else f"{figure[0]:.2f} / {figure[1]:.2f}"


__all__ = ["DATASET_NAMES", "IJCV_TABLE3", "IJCV_TABLE4", "quoted"]
