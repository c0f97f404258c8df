"""Baselines B1-B4 of on-the-fly FG-SBIR (Bhunia et al., CVPR 2020, Sec. 4), on the same frozen features as RL.

Every baseline here trains HEADS ONLY: new final Linear layers on the frozen features of :class:`Episodes` (the
paper trains whole networks). Each head starts from the supervised final layer, so the baselines and the RL policy
(``init="supervised"``) start from the same point and change the same weights.

* ``B1``: the supervised model on partial sketches, unchanged (no training);
* ``B2``: one head trained with the triplet loss on every partial step (all steps are training samples);
* ``B3``: one head per completion step (T heads), each trained with the triplet loss on its own step;
* ``B4``: one head trained to maximise a soft 1/rank of the true photo over all steps: the rank is relaxed to
  ``1 + sum_j sigmoid((d_true - d_j) / temperature)`` over the other photos. This is a soft-rank surrogate in the
  spirit of SoDeep (Engilberge et al., CVPR 2019), not SoDeep itself (no learned sorting network).

:func:`train_baseline` returns a :class:`StepHeads`; ``sbir_core.rl.episode_ranks(heads, episodes)`` gives its ranks
(Q, T), the same function the RL policy and B1 are scored with.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from tqdm.auto import tqdm

from sbir_core.rl import Episodes, gallery_distances
from sbir_core.runtime import progress_disabled

BASELINES = ("B1", "B2", "B3", "B4")


class StepHeads(nn.Module):
    """One head for every step (one Linear) or one head per step (T Linears): features (Q, T, D) -> (Q, T, E)."""

    def __init__(self, heads: list[nn.Linear]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if len(self.heads) == 1:
            return self.heads[0](features)
        if len(self.heads) != features.shape[1]:
            raise ValueError(f"{len(self.heads)} per-step heads for features of {features.shape[1]} steps")
        return torch.stack([head(features[:, t]) for t, head in enumerate(self.heads)], dim=1)


def triplet_objective(emb: torch.Tensor, targets: torch.Tensor, photos: torch.Tensor, generator: torch.Generator,
                      margin: float) -> torch.Tensor:
    """The supervised model's loss, squared-Euclidean triplet (Yu et al., CVPR 2016, Eq. 1) on L2-normalised
    embeddings, with one uniformly drawn other photo as the negative of each sample."""
    negatives = torch.randint(0, len(photos) - 1, targets.shape, generator=generator, device=targets.device)
    negatives = negatives + (negatives >= targets).long()
    d = gallery_distances(emb, photos)
    d_pos, d_neg = d.gather(1, targets[:, None])[:, 0], d.gather(1, negatives[:, None])[:, 0]
    return torch.relu(margin + d_pos - d_neg).mean()


def soft_rank_objective(emb: torch.Tensor, targets: torch.Tensor, photos: torch.Tensor,
                        temperature: float) -> torch.Tensor:
    """Minus the mean soft 1/rank: ``rank ~ 1 + sum_{j != true} sigmoid((d_true - d_j) / temperature)``."""
    d = gallery_distances(emb, photos)
    soft = torch.sigmoid((d.gather(1, targets[:, None]) - d) / temperature).sum(1) - 0.5  # the true photo's own 0.5
    return -(1.0 / (1.0 + soft)).mean()


def _fit_head(head: nn.Linear, features: torch.Tensor, targets: torch.Tensor, photos: torch.Tensor, objective: str,
              epochs: int, lr: float, batch_size: int, margin: float, temperature: float,
              generator: torch.Generator, bar: tqdm) -> nn.Linear:
    """Adam on one head over samples ``features`` (N, D) with true photos ``targets`` (N,)."""
    head = copy.deepcopy(head).requires_grad_(True)
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(features), generator=generator, device=features.device)
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            emb = head(features[idx])
            if objective == "triplet":
                loss = triplet_objective(emb, targets[idx], photos, generator, margin)
            else:
                loss = soft_rank_objective(emb, targets[idx], photos, temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        bar.update(1)
    return head.requires_grad_(False).eval()


def train_baseline(name: str, episodes: Episodes, epochs: int = 10, lr: float = 1e-4, batch_size: int = 64,
                   margin: float = 0.3, temperature: float = 0.05, seed: int = 0, progress: bool = True) -> StepHeads:
    """Baseline ``name`` (B1-B4, see the module docstring) on ``episodes``; ``margin`` (0.3, the book's triplet loss)
    is for B2/B3, ``temperature`` (of squared distances between unit vectors, which lie in [0, 4]) for B4."""
    if name not in BASELINES:
        raise ValueError(f"baseline must be one of {BASELINES}, got {name!r}")
    if name == "B1":
        return StepHeads([copy.deepcopy(episodes.head)])
    generator = torch.Generator(episodes.features.device).manual_seed(seed)
    q, t, d = episodes.features.shape
    fit = dict(photos=episodes.photos, epochs=epochs, lr=lr, batch_size=batch_size, margin=margin,
               temperature=temperature, generator=generator)
    bar = tqdm(total=epochs * (t if name == "B3" else 1), desc=name, leave=False, disable=progress_disabled(progress))
    if name == "B3":
        heads = [_fit_head(episodes.head, episodes.features[:, s], episodes.targets, objective="triplet", bar=bar,
                           **fit) for s in range(t)]
    else:  # every (sketch, step) is a sample
        heads = [_fit_head(episodes.head, episodes.features.reshape(q * t, d), episodes.targets.repeat_interleave(t),
                           objective="triplet" if name == "B2" else "soft-rank", bar=bar, **fit)]
    bar.close()
    return StepHeads(heads)


__all__ = ["BASELINES", "StepHeads", "soft_rank_objective", "train_baseline", "triplet_objective"]
