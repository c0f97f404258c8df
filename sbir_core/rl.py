"""On-the-fly FG-SBIR by reinforcement learning (Bhunia et al., "Sketch Less for More", CVPR 2020).

The supervised two-branch model is frozen. An episode is one sketch drawn in T progressive steps; the state at step
t is the frozen sketch branch's feature of the partial sketch (the input of its FINAL Linear layer), the action is an
embedding sampled from a Gaussian policy whose mean is a Linear layer (the new final layer), and the reward scores
the rank of the true photo among the frozen photo embeddings. Everything before the final layer runs once, in
:func:`build_episodes`; training then touches only ``(Q, T, D)`` feature tensors.

* Rewards: every scheme of the paper's reward table, including Eq. 4, ``g1 / rank_t + g2 * global_t`` with the
  Kendall-tau global term.
* Algorithms, one update function each, sharing :func:`rollout`: ``vpg`` (REINFORCE with the flat per-step reward,
  the released code), the four PPO variants of the paper's RL table (``ppo-a-clip`` is the paper's choice) and
  ``trpo``. :func:`train_policy` dispatches through :data:`ALGORITHMS`.
* Ranking, as the official code: actions are L2-normalised, distances are Euclidean (squared: same order), and
  ties count against the query (rank = #photos at a distance <= the true photo's).

The baselines B2-B4 live in :mod:`sbir_core.onthefly_baselines`; the metrics in
:func:`sbir_core.metrics.onthefly_metrics`.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, kl_divergence
from tqdm.auto import tqdm

from sbir_core.config import RunConfig, override_fields
from sbir_core.data.render import SCHEDULES, progressive_rasters
from sbir_core.data.sketch import Sketch
from sbir_core.data.views import eval_views
from sbir_core.errors import ConfigError, DataError
from sbir_core.losses import pairwise_distance
from sbir_core.models import EmbeddingNet, SBIRModel, photo_input, sketch_input, split_final_layer
from sbir_core.runtime import (atomic_path, get_device, map_in_processes, progress_disabled, seed_everything,
                               usable_cpus)
from sbir_core.train import _torch_settings, embed

REWARDS = ("top1", "top5", "top10", "neg-rank", "inv-sqrt-rank", "inv-rank", "eq4")
POLICY, CONFIG, HISTORY = "policy.pt", "config.json", "history.jsonl"


# --- configuration ---------------------------------------------------------------------------------------------------
@dataclass
class RLConfig:
    """Hyper-parameters of on-the-fly RL training. The paper gives the algorithm, the reward and T = 20 steps; the
    released code gives the VPG settings; the rest is marked as our choice."""

    algorithm: str = "ppo-a-clip"  # vpg | ppo-a-clip | ppo-ac-clip | ppo-a-kl | ppo-ac-kl | trpo (paper: ppo-a-clip)
    reward: str = "eq4"  # top1 | top5 | top10 | neg-rank | inv-sqrt-rank | inv-rank | eq4 (paper: eq4)
    g1: float = 1.0  # Eq. 4 weight of the local reward 1/rank_t (our choice: the paper gives none)
    g2: float = 1.0  # Eq. 4 weight of the global Kendall-tau term (our choice: the paper gives none)
    gamma: float = 0.9  # discount of the returns-to-go (declared, unused, in the released VPG code; PPO/TRPO use it)
    lr: float = 3e-4  # actor Adam learning rate (our choice: the released code's 1e-3 suits its random init; from the
    #   supervised head it lowers the training reward itself on the book model, 3e-4 raises it, 1e-4 barely moves)
    epochs: int = 20  # passes over the training episodes (our choice; the released code runs 2000 "epochs")
    episodes_per_update: int = 4  # episodes (sketches) per policy update (our choice: 4 x `samples` plays; the
    #   released code's batch is 16, which gives 4x fewer updates per epoch and less gain in the same time)
    samples: int = 8  # episodes played per sketch and update; the actor-only baseline is their mean return (our
    #   choice: the features do not depend on the actions, so K plays of one sketch give a per-sketch baseline)
    clip_eps: float = 0.2  # PPO clip range (our choice: PPO's default, also the group's PPO code)
    ppo_epochs: int = 4  # PPO optimisation passes over each batch (our choice)
    kl_target: float = 0.01  # PPO-KL: target KL per step; beta doubles above 1.5x, halves below 1/1.5x (our choice)
    kl_beta: float = 1.0  # PPO-KL: initial penalty coefficient (PPO paper's default)
    critic_lr: float = 1e-3  # actor-critic PPO: critic Adam learning rate (the group's PPO code)
    critic_hidden: int = 64  # actor-critic PPO: hidden units of V(features_t), one tanh layer (our choice)
    entropy_coef: float = 0.0  # PPO: weight of the policy entropy bonus (our choice; the group's PPO code uses 0.01)
    grad_clip: float = 40.0  # gradient-norm clip of first-order updates (the released code's clip_grad_norm 40)
    max_kl: float = 0.01  # TRPO: trust region, mean KL(old || new) per step (our choice: TRPO's usual value)
    damping: float = 0.1  # TRPO: Fisher damping in the conjugate gradient (our choice)
    cg_iters: int = 10  # TRPO: conjugate-gradient iterations (our choice)
    line_search_steps: int = 10  # TRPO: backtracking halvings of the step before giving up (our choice)
    init: str = "supervised"  # policy mean: "supervised" (the final layer: starts at B1) or "random" (released code)
    log_std: float = -2.0  # initial log standard deviation of every action dimension (our choice; the released code: 0)
    seed: int = 0  # fixes the random init, the episode order and every sampled action
    steps: int = 20  # progressive steps T (the paper's 5 % steps); "official17" always uses 17
    schedule: str = "points"  # points | strokes | official17 (see sbir_core.data.render)
    device: str = "auto"  # auto, cpu, cuda, ...
    num_threads: int | None = None  # torch CPU threads during training; None leaves the default (1 suits tiny data)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: PPO-KL's adaptive beta stays in this range (our choice): Adam's step does not shrink with the loss, so an unbounded
#: beta keeps doubling while the KL sits above its target, until the penalty overflows to inf and the policy to NaN.
KL_BETA_RANGE = (1e-3, 1e3)
ALGORITHM_NAMES = ("vpg", "ppo-a-clip", "ppo-ac-clip", "ppo-a-kl", "ppo-ac-kl", "trpo")
_POSITIVE = ("lr", "epochs", "episodes_per_update", "samples", "clip_eps", "ppo_epochs", "kl_target", "kl_beta",
             "critic_lr", "critic_hidden", "grad_clip", "max_kl", "cg_iters", "line_search_steps")


def validate_rl_config(cfg: RLConfig) -> RLConfig:
    """Check ``cfg`` before anything is built; raise ``ConfigError`` naming the first bad key. Returns ``cfg``."""
    for key, choices in (("algorithm", ALGORITHM_NAMES), ("reward", REWARDS), ("init", ("supervised", "random")),
                         ("schedule", SCHEDULES)):
        if getattr(cfg, key) not in choices:
            raise ConfigError(key, f"{getattr(cfg, key)!r} is not one of {', '.join(choices)}")
    for key in _POSITIVE:
        if not getattr(cfg, key) > 0:
            raise ConfigError(key, f"must be positive, got {getattr(cfg, key)}")
    if not 0 <= cfg.gamma <= 1:
        raise ConfigError("gamma", f"must lie in [0, 1], got {cfg.gamma}")
    if cfg.clip_eps >= 1:
        raise ConfigError("clip_eps", f"must lie in (0, 1), got {cfg.clip_eps}")
    for key in ("damping", "entropy_coef"):
        if getattr(cfg, key) < 0:
            raise ConfigError(key, f"must not be negative, got {getattr(cfg, key)}")
    if cfg.num_threads is not None and cfg.num_threads < 1:
        raise ConfigError("num_threads", f"must be at least 1 or None, got {cfg.num_threads}")
    if cfg.steps < 2:
        raise ConfigError("steps", f"an episode needs at least 2 steps, got {cfg.steps}")
    return cfg


def override_rl(cfg: RLConfig, assignments: Sequence[str]) -> RLConfig:
    """Apply ``field=value`` assignments (``--set``) to a copy of ``cfg``."""
    return override_fields(cfg, assignments, "on-the-fly configuration")


def n_steps(steps: int, schedule: str) -> int:
    """The number of progressive rasters T a schedule gives (``official17``: always 17)."""
    return 17 if schedule == "official17" else steps


# --- episodes: the frozen model's features of every progressive step, computed once ---------------------------------
@dataclass
class Episodes:
    """The RL data set: states of every step of every sketch, the photo gallery, and the true photos."""

    features: torch.Tensor  # (Q, T, D) float32: the frozen sketch branch at each step, up to its final Linear
    photos: torch.Tensor  # (G, E) float32: L2-normalised embeddings of the frozen photo branch
    targets: torch.Tensor  # (Q,) long: index of each sketch's true photo in ``photos``
    head: nn.Linear  # the supervised final Linear (D -> E), frozen: baseline B1 and ``init="supervised"``

    def __post_init__(self) -> None:
        if self.features.ndim != 3 or self.features.shape[0] == 0 or self.features.shape[1] == 0:
            raise DataError(f"no episodes: features must be (Q, T, D) with Q, T >= 1, got {tuple(self.features.shape)}")
        if self.photos.ndim != 2 or self.photos.shape[0] < 2:
            raise DataError(f"the gallery needs at least 2 photos, got photos of shape {tuple(self.photos.shape)}")
        if self.targets.shape != (self.features.shape[0],):
            raise ValueError(f"need one target per episode: {tuple(self.targets.shape)} for {len(self)} episodes")
        if self.targets.min() < 0 or self.targets.max() >= self.photos.shape[0]:
            raise ValueError(f"targets must index the {self.photos.shape[0]} photos")
        if (self.head.in_features, self.head.out_features) != (self.features.shape[2], self.photos.shape[1]):
            raise ValueError(f"head {self.head} does not map features of size {self.features.shape[2]} to "
                             f"embeddings of size {self.photos.shape[1]}")

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def steps(self) -> int:
        return int(self.features.shape[1])

    def subset(self, photo_idx: Sequence[int] | np.ndarray) -> "Episodes":
        """The photos ``photo_idx`` (in that order) as the gallery, and every episode whose true photo is one of them
        (as :meth:`sbir_core.train.SplitTensors.subset`)."""
        photo_idx = torch.as_tensor(np.asarray(photo_idx, dtype=np.int64))
        remap = torch.full((self.photos.shape[0],), -1, dtype=torch.long)
        remap[photo_idx] = torch.arange(len(photo_idx))
        new_targets = remap[self.targets.cpu()]
        keep = torch.nonzero(new_targets >= 0).flatten()
        return Episodes(self.features[keep.to(self.features.device)], self.photos[photo_idx.to(self.photos.device)],
                        new_targets[keep].to(self.targets.device), self.head)

    def to(self, device: torch.device | str) -> "Episodes":
        return Episodes(self.features.to(device), self.photos.to(device), self.targets.to(device),
                        copy.deepcopy(self.head).to(device))


def build_episodes(model: SBIRModel, sketches: Sequence[Sketch], photos: torch.Tensor | np.ndarray,
                   targets: Sequence[int] | np.ndarray | torch.Tensor, size: int, steps: int = 20,
                   schedule: str = "points", keys: Sequence[str] | None = None,
                   device: torch.device | str = "cpu", batch_size: int = 64, amp: bool = False,
                   progress: bool = True) -> Episodes:
    """Run the frozen model once over every progressive step of ``sketches`` and over the gallery ``photos``.

    ``photos`` is the uint8 gallery ``(G, S, S, 3)`` at the data size S; the sketches are rendered at S with
    :func:`progressive_rasters` (the last step is exactly ``Split.sketch_rasters(S)``), stored as uint8 like
    :class:`SplitTensors`, and centre-cropped to ``size`` as single-view evaluation does (``train.embed`` with the
    centre view). ``keys`` name the sketches in errors (a sketch with fewer points than steps).
    """
    net = model.sketch
    if not isinstance(net, EmbeddingNet) or not net.normalize:
        raise ConfigError("model", "on-the-fly RL needs an L2-normalised EmbeddingNet sketch branch")
    if len(sketches) == 0:
        raise DataError("no sketches: an empty episode set")
    t = n_steps(steps, schedule)
    for i, sketch in enumerate(sketches):
        if sketch.n_points < t:
            raise DataError(f"sketch has {sketch.n_points} points, fewer than the {t} progressive steps",
                            keys[i] if keys is not None else f"sketch {i}")
    photos = torch.as_tensor(np.asarray(photos))
    device = torch.device(device)
    features_fn, final = split_final_layer(net)
    data_size = int(photos.shape[1])
    view = eval_views(data_size, size, multiview=False)[0]
    was_training = model.training
    model.eval()
    try:
        gallery = embed(model.embed_photo, photos, photo_input, size, view, device, batch_size, amp)
        per_chunk = max(1, batch_size // t)  # sketches per rendering pass: about one network batch of rasters
        out = []
        for lo in tqdm(range(0, len(sketches), per_chunk), desc="episodes", leave=False,
                       disable=progress_disabled(progress)):
            rasters = progressive_rasters(sketches[lo:lo + per_chunk], steps, size=data_size, schedule=schedule)
            images = torch.round(rasters * 255).to(torch.uint8).flatten(0, 1)  # as SplitTensors stores sketches
            out.append(embed(features_fn, images, sketch_input, size, view, device, batch_size, amp)
                       .view(len(rasters), t, -1).cpu())
    finally:
        model.train(was_training)
    return Episodes(torch.cat(out), gallery.cpu(), torch.as_tensor(np.asarray(targets), dtype=torch.long),
                    copy.deepcopy(final).cpu().requires_grad_(False))


def episodes_from_split(model: SBIRModel, cfg: RunConfig, split: Any, steps: int = 20, schedule: str = "points",
                        device: torch.device | str = "cpu", progress: bool = True,
                        first_photos: int | None = None) -> Episodes:
    """:func:`build_episodes` for a dataset split (``sbir_core.data.Split``) and the run configuration ``cfg`` that
    trained ``model`` (its data size, input size, batch size and AMP setting). ``first_photos=N`` keeps only the
    split's first N photos and their sketches (as ``SplitTensors.subset``), the gallery included."""
    if split.vectors is None:
        raise DataError(f"the {split.name} split has raster sketches only (no stroke data, e.g. QMUL-V1); on-the-fly "
                        "retrieval needs vector sketches", split.source)
    if cfg.loss.name != "triplet":
        raise ConfigError("loss.name", f"on-the-fly ranking uses the Euclidean distance; the base run ranks by "
                          f"{cfg.loss.name!r}")
    photos, positives = split.photos(cfg.train.data_size), np.asarray(split.positives)
    keep = np.arange(len(positives))
    if first_photos is not None:
        if first_photos < 2:
            raise ConfigError("first_photos", f"a gallery needs at least 2 photos, got {first_photos}")
        photos = photos[:first_photos]
        keep = np.flatnonzero(positives < len(photos))
    return build_episodes(model, [split.vectors[i] for i in keep], photos, positives[keep], cfg.model.input_size,
                          steps, schedule, [split.sketch_keys[i] for i in keep], device, cfg.eval.batch_size,
                          cfg.train.amp, progress)


# --- ranks and rewards ------------------------------------------------------------------------------------------------
def gallery_distances(actions: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``(..., G)`` from the L2-normalised ``actions`` ``(..., E)`` to every photo."""
    a = F.normalize(actions.float(), dim=-1)
    return pairwise_distance(a.reshape(-1, a.shape[-1]), photos, squared=True).view(*a.shape[:-1], -1)


def target_ranks(distances: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of the true photo from distances ``(B, ..., G)``, ties against the query; ``targets`` (B,)."""
    index = targets.view(-1, *[1] * (distances.ndim - 1)).expand(*distances.shape[:-1], 1)
    return (distances <= distances.gather(-1, index)).sum(-1)


def rank_of_target(actions: torch.Tensor, photos: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Rank (1 = best) of each true photo for ``actions`` (B, E), L2-normalised first; ties count pessimistically
    (rank = #photos at a distance <= the true photo's), as the official code."""
    return target_ranks(gallery_distances(actions, photos), targets)


def _run_starts(s: np.ndarray) -> np.ndarray:
    """True where a row-sorted array starts a run of equal values."""
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    return new


def _tied_pairs(run_starts: np.ndarray) -> np.ndarray:
    """Pairs of equal values in each row of a row-sorted array, from its :func:`_run_starts` mask."""
    idx = np.broadcast_to(np.arange(run_starts.shape[1]), run_starts.shape)
    return (idx - np.maximum.accumulate(np.where(run_starts, idx, 0), axis=1)).sum(1)


def _dense_ranks(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense 0-based ranks along each row (equal values share a rank), and each row's number of tied pairs."""
    order = np.argsort(v, axis=1)
    starts = _run_starts(np.take_along_axis(v, order, axis=1))
    ranks = np.empty(v.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, np.cumsum(starts, axis=1) - 1, axis=1)
    return ranks, _tied_pairs(starts)


def _inversions(y: np.ndarray) -> np.ndarray:
    """Pairs i < j with ``y[i] > y[j]`` in each row of integers in [0, n), by a bottom-up merge count: merging two
    sorted sibling blocks of width w (a stable sort on ``2 value + side``), a right-block element at merged position
    p that is the j-th of its block has p - j left elements <= it, hence w - p + j inversions."""
    rows, n = y.shape
    m = 1 << max(n - 1, 0).bit_length()  # a power of two; the padding (n, above every value, at the end) adds none
    y = np.concatenate([y.astype(np.int32), np.full((rows, m - n), n, dtype=np.int32)], axis=1)
    total = np.zeros(rows, dtype=np.int64)
    w = 1
    while w < m:
        blocks = m // (2 * w)
        key = y.reshape(rows, blocks, 2, w) * 2
        key[:, :, 1] += 1  # the right block's side bit: equal values merge left first
        merged = np.sort(key.reshape(rows, blocks, 2 * w), axis=-1)  # equal keys are identical: any sort will do
        right_positions = (merged & 1).reshape(rows, m) @ np.tile(np.arange(2 * w), blocks)
        total += blocks * (w * w + w * (w - 1) // 2) - right_positions
        y = (merged >> 1).reshape(rows, m)
        w *= 2
    return total


def _tau_b(rx: np.ndarray, x_ties: np.ndarray, ry: np.ndarray, y_ties: np.ndarray) -> np.ndarray:
    """Tau-b from dense ranks and tie counts, with scipy's formula and float64 arithmetic (NaN for a constant row)."""
    n = rx.shape[1]
    key = np.sort(rx * n + ry, axis=1)  # by x, then by y: pairs tied in x add no inversion of y
    discordant = _inversions(key % n)
    both = _tied_pairs(_run_starts(key))
    tot = n * (n - 1) // 2
    con_minus_dis = (tot - x_ties - y_ties + both - 2 * discordant).astype(np.float64)
    constant = (x_ties == tot) | (y_ties == tot)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = con_minus_dis / np.sqrt((tot - x_ties).astype(np.float64)) / np.sqrt((tot - y_ties).astype(np.float64))
    return np.where(constant, np.nan, np.clip(tau, -1.0, 1.0))


def kendall_tau_b(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> np.ndarray:
    """Kendall's tau-b between the rows of ``x`` and ``y`` (P, n): ``scipy.stats.kendalltau(x[i], y[i]).statistic``
    for every row at once (the same tie handling and float64 arithmetic; NaN where a row is constant).

    Why not scipy itself: a call costs about 0.3 ms whatever n (Python-level overhead), and the Eq. 4 reward needs
    one per pair of consecutive steps of every play, ``episodes_per_update x samples x (T - 1)`` per update. This
    batched version gives the identical statistic (tested against scipy) several times faster
    (``benchmarks/bench_onthefly.py --kendall``).
    """
    return _tau_b(*_dense_ranks(np.asarray(x)), *_dense_ranks(np.asarray(y)))


def kendall_tau_distances(actions: torch.Tensor, photos: torch.Tensor) -> torch.Tensor:
    """Normalised Kendall-tau DISTANCE ``(1 - tau_b) / 2`` between the gallery rankings of consecutive steps:
    ``actions`` (..., T, E) -> (..., T - 1); 0 = the same order, 1 = reversed (the paper's "explosive" plot)."""
    return _step_kendall(gallery_distances(actions, photos))


def _step_kendall(distances: torch.Tensor) -> torch.Tensor:
    """``(..., T, G)`` distances -> ``(..., T - 1)`` Kendall-tau distances between consecutive steps' rankings (every
    step ranked once)."""
    *lead, t, g = distances.shape
    ranks, ties = _dense_ranks(distances.detach().cpu().numpy().reshape(-1, g))
    ranks, ties = ranks.reshape(-1, t, g), ties.reshape(-1, t)
    tau = _tau_b(ranks[:, :-1].reshape(-1, g), ties[:, :-1].reshape(-1), ranks[:, 1:].reshape(-1, g),
                 ties[:, 1:].reshape(-1))
    return torch.from_numpy((1.0 - tau) / 2).float().view(*lead, t - 1).to(distances.device)


def global_reward(tau_distances: torch.Tensor) -> torch.Tensor:
    """Eq. 4's global term from ``tau(L_t, L_t+1)`` (..., T - 1): ``-max(0, tau(L_t, L_t+1) - tau(L_t-1, L_t))``
    at 0 < t < T - 1, and 0 at the first and last step (no L_t-1 or L_t+1). (..., T)."""
    out = tau_distances.new_zeros(*tau_distances.shape[:-1], tau_distances.shape[-1] + 1)
    out[..., 1:-1] = -torch.relu(tau_distances[..., 1:] - tau_distances[..., :-1])
    return out


def step_rewards(ranks: torch.Tensor, scheme: str, distances: torch.Tensor | None = None, g1: float = 1.0,
                 g2: float = 1.0) -> torch.Tensor:
    """Reward of every step (the paper's reward table) from ``ranks`` (B, T); ``"eq4"`` also needs the gallery
    ``distances`` (B, T, G) for the Kendall-tau term. A constant ranking has no tau (NaN): its global term is 0."""
    r = ranks.double()
    if scheme in ("top1", "top5", "top10"):
        out = (r <= int(scheme[3:])).double()
    elif scheme == "neg-rank":
        out = -r
    elif scheme == "inv-sqrt-rank":
        out = r.rsqrt()
    elif scheme == "inv-rank":
        out = 1.0 / r
    elif scheme == "eq4":
        if distances is None:
            raise ValueError("the eq4 reward needs the gallery distances of every step")
        out = g1 / r + g2 * torch.nan_to_num(global_reward(_step_kendall(distances)), nan=0.0)
    else:
        raise ValueError(f"reward must be one of {REWARDS}, got {scheme!r}")
    return out.float()


def discounted_returns(rewards: torch.Tensor, gamma: float) -> torch.Tensor:
    """Returns-to-go ``G_t = sum_k>=t gamma^(k - t) r_k`` of rewards (B, T)."""
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in range(rewards.shape[1] - 1, -1, -1):
        running = rewards[:, t] + gamma * running
        out[:, t] = running
    return out


# --- the policy -------------------------------------------------------------------------------------------------------
class GaussianPolicy(nn.Module):
    """pi(a | s) = N(W s + b, diag(exp(log_std))^2): the mean is a new final layer, ``log_std`` is learnt (one value
    per dimension, initially ``log_std``; the released code's std is exp(0.5 * 0) = 1)."""

    def __init__(self, in_dim: int, out_dim: int, log_std: float = -2.0) -> None:
        super().__init__()
        self.mean = nn.Linear(in_dim, out_dim)
        self.log_std = nn.Parameter(torch.full((out_dim,), float(log_std)))

    @classmethod
    def from_head(cls, head: nn.Linear, init: str = "supervised", log_std: float = -2.0) -> "GaussianPolicy":
        """A policy for features of ``head``'s input size: mean = a copy of ``head`` (``"supervised"``) or a fresh
        random Linear layer (``"random"``, the released code; PyTorch's default init from the global seed)."""
        policy = cls(head.in_features, head.out_features, log_std)
        if init == "supervised":
            policy.mean.load_state_dict(head.state_dict())
        elif init != "random":
            raise ConfigError("init", f"{init!r} is not one of supervised, random")
        return policy.to(head.weight.device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """The deterministic action: the mean."""
        return self.mean(features)

    def dist(self, features: torch.Tensor) -> Normal:
        mean = self.mean(features)  # no argument validation: 8 % of an update; train_policy checks the weights
        return Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False)

    def act(self, features: torch.Tensor, deterministic: bool = True,
            generator: torch.Generator | None = None) -> torch.Tensor:
        """The mean, or a sample drawn with ``generator``."""
        mean = self.mean(features)
        if deterministic:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + self.log_std.exp() * noise


# --- rollouts and updates ---------------------------------------------------------------------------------------------
@dataclass
class Rollout:
    """A batch of B episodes played with the current policy, every tensor (B, T, ...)."""

    features: torch.Tensor  # (B, T, D) states
    actions: torch.Tensor  # (B, T, E) sampled actions
    ranks: torch.Tensor  # (B, T) rank of the true photo
    rewards: torch.Tensor  # (B, T)
    returns: torch.Tensor  # (B, T) discounted returns-to-go


@torch.no_grad()
def rollout(policy: GaussianPolicy, episodes: Episodes, index: torch.Tensor, cfg: RLConfig,
            generator: torch.Generator) -> Rollout:
    """Play episodes ``index``, each ``cfg.samples`` times (consecutive rows): sample actions at all T steps; rank,
    reward and discount them."""
    index = index.repeat_interleave(cfg.samples)
    features = episodes.features[index]
    actions = policy.act(features, deterministic=False, generator=generator)
    distances = gallery_distances(actions, episodes.photos)
    ranks = target_ranks(distances, episodes.targets[index])
    rewards = step_rewards(ranks, cfg.reward, distances, cfg.g1, cfg.g2)
    return Rollout(features, actions, ranks, rewards, discounted_returns(rewards, cfg.gamma))


@dataclass
class Learner:
    """What the updates change: the policy, an optional critic V(features_t), their optimisers, the KL coefficient."""

    policy: GaussianPolicy
    actor_opt: torch.optim.Optimizer
    critic: nn.Module | None = None
    critic_opt: torch.optim.Optimizer | None = None
    kl_beta: float = 1.0


def _log_prob(dist: Normal, actions: torch.Tensor) -> torch.Tensor:
    return dist.log_prob(actions).sum(-1)


def _mean_kl(old: Normal, new: Normal) -> torch.Tensor:
    """Mean over steps of KL(old || new), summed over action dimensions."""
    return kl_divergence(old, new).sum(-1).mean()


def _step(opt: torch.optim.Optimizer, loss: torch.Tensor, clip: float) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_([p for group in opt.param_groups for p in group["params"]], clip)
    opt.step()


def _baseline_advantage(batch: Rollout, samples: int) -> torch.Tensor:
    """Return minus the mean return of the same sketch's ``samples`` plays at the same step, scaled by the batch's
    standard deviation (PPO's usual advantage normalisation)."""
    returns = batch.returns.view(-1, samples, batch.returns.shape[-1])
    advantage = (returns - returns.mean(1, keepdim=True)).view_as(batch.returns)
    return advantage / (advantage.std() + 1e-8)


def vpg_update(learner: Learner, batch: Rollout, cfg: RLConfig) -> dict[str, float]:
    """Vanilla policy gradient as the released code: REINFORCE with the flat per-step reward,
    loss = -(1/T) sum_t log pi(a_t | s_t) r_t, averaged over the episodes (no discount, no baseline)."""
    policy = learner.policy
    with torch.no_grad():
        old = policy.dist(batch.features)
    loss = -(_log_prob(policy.dist(batch.features), batch.actions) * batch.rewards).mean()
    _step(learner.actor_opt, loss, cfg.grad_clip)
    with torch.no_grad():
        kl = _mean_kl(old, policy.dist(batch.features)).item()
    return {"loss": loss.item(), "kl": kl}


def ppo_update(learner: Learner, batch: Rollout, cfg: RLConfig, *, critic: bool, objective: str) -> dict[str, float]:
    """PPO (Schulman et al., 2017) on one batch, ``cfg.ppo_epochs`` passes:

    * ``objective="clip"``: maximise mean(min(rho A, clip(rho, 1 - eps, 1 + eps) A)), rho = pi / pi_old (Eq. 7);
    * ``objective="kl"``: maximise mean(rho A) - beta KL(pi_old || pi), beta adapted after the batch (Sec. 4).

    The advantage A is the return minus V(features_t) with ``critic`` (trained by MSE on the returns), else minus the
    mean return of the same sketch's ``cfg.samples`` plays (:func:`_baseline_advantage`; PPO-A, "actor only": the
    paper's PPO-A-Clip).
    """
    policy, features, actions = learner.policy, batch.features, batch.actions
    with torch.no_grad():
        old = policy.dist(features)
        old_log_prob = _log_prob(old, actions)
        advantage = (batch.returns - learner.critic(features).squeeze(-1) if critic
                     else _baseline_advantage(batch, cfg.samples))
    for _ in range(cfg.ppo_epochs):
        dist = policy.dist(features)
        ratio = (_log_prob(dist, actions) - old_log_prob).exp()
        if objective == "clip":
            surrogate = torch.min(ratio * advantage, ratio.clamp(1 - cfg.clip_eps, 1 + cfg.clip_eps) * advantage)
            loss = -surrogate.mean()
        else:
            loss = -(ratio * advantage).mean() + learner.kl_beta * _mean_kl(old, dist)
        loss = loss - cfg.entropy_coef * dist.entropy().sum(-1).mean()
        _step(learner.actor_opt, loss, cfg.grad_clip)
        if critic:
            value_loss = F.mse_loss(learner.critic(features).squeeze(-1), batch.returns)
            _step(learner.critic_opt, value_loss, cfg.grad_clip)
    with torch.no_grad():
        kl = _mean_kl(old, policy.dist(features)).item()
    if objective == "kl":
        if kl > 1.5 * cfg.kl_target:
            learner.kl_beta = min(2.0 * learner.kl_beta, KL_BETA_RANGE[1])
        elif kl < cfg.kl_target / 1.5:
            learner.kl_beta = max(learner.kl_beta / 2.0, KL_BETA_RANGE[0])
    return {"loss": loss.item(), "kl": kl, **({"kl_beta": learner.kl_beta} if objective == "kl" else {})}


def _flat_grad(output: torch.Tensor, params: list[nn.Parameter], create_graph: bool = False) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(output, params, create_graph=create_graph)])


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int,
                       tol: float = 1e-10) -> torch.Tensor:
    """Approximately solve ``A x = b`` for a symmetric positive-definite A given as ``matvec``."""
    x, r = torch.zeros_like(b), b.clone()
    p, rr = r.clone(), r @ r
    for _ in range(iters):
        if rr < tol:
            break
        ap = matvec(p)
        alpha = rr / (p @ ap)
        x, r = x + alpha * p, r - alpha * ap
        rr_new = r @ r
        p, rr = r + (rr_new / rr) * p, rr_new
    return x


def trpo_update(learner: Learner, batch: Rollout, cfg: RLConfig) -> dict[str, float]:
    """TRPO (Schulman et al., 2015) with the per-sketch baseline of PPO-A: the natural gradient F^-1 g by conjugate
    gradient on Fisher-vector products (the Hessian of the mean KL), scaled to the trust region KL = ``max_kl``, then
    a backtracking line search that halves the step until KL(old || new) <= ``max_kl`` and the surrogate improves
    (else no step)."""
    policy, features, actions = learner.policy, batch.features, batch.actions
    params = list(policy.parameters())
    with torch.no_grad():
        old = policy.dist(features)
        old_log_prob = _log_prob(old, actions)
        advantage = _baseline_advantage(batch, cfg.samples)

    def surrogate() -> torch.Tensor:
        return ((_log_prob(policy.dist(features), actions) - old_log_prob).exp() * advantage).mean()

    def fisher_vector(v: torch.Tensor) -> torch.Tensor:
        grad_kl = _flat_grad(_mean_kl(old, policy.dist(features)), params, create_graph=True)
        return _flat_grad(grad_kl @ v, params) + cfg.damping * v

    start_value = surrogate()
    gradient = _flat_grad(start_value, params)
    direction = conjugate_gradient(fisher_vector, gradient, cfg.cg_iters)
    curvature = direction @ fisher_vector(direction)
    start = nn.utils.parameters_to_vector(params).detach()
    kl, accepted = 0.0, False
    if curvature > 0:
        full_step = torch.sqrt(2 * cfg.max_kl / curvature) * direction
        with torch.no_grad():
            for k in range(cfg.line_search_steps):
                nn.utils.vector_to_parameters(start + 0.5 ** k * full_step, params)
                kl = _mean_kl(old, policy.dist(features)).item()
                if kl <= cfg.max_kl and surrogate() > start_value:
                    accepted = True
                    break
            if not accepted:
                nn.utils.vector_to_parameters(start, params)
                kl = 0.0
    return {"loss": -start_value.item(), "kl": kl, "accepted": float(accepted)}


ALGORITHMS: dict[str, Callable[[Learner, Rollout, RLConfig], dict[str, float]]] = {
    "vpg": vpg_update,
    "ppo-a-clip": partial(ppo_update, critic=False, objective="clip"),
    "ppo-ac-clip": partial(ppo_update, critic=True, objective="clip"),
    "ppo-a-kl": partial(ppo_update, critic=False, objective="kl"),
    "ppo-ac-kl": partial(ppo_update, critic=True, objective="kl"),
    "trpo": trpo_update,
}


def _learner(episodes: Episodes, cfg: RLConfig) -> Learner:
    policy = GaussianPolicy.from_head(episodes.head, cfg.init, cfg.log_std)
    learner = Learner(policy, torch.optim.Adam(policy.parameters(), lr=cfg.lr), kl_beta=cfg.kl_beta)
    if cfg.algorithm.startswith("ppo-ac"):
        d = episodes.features.shape[2]
        learner.critic = nn.Sequential(nn.Linear(d, cfg.critic_hidden), nn.Tanh(), nn.Linear(cfg.critic_hidden, 1))
        learner.critic.to(episodes.features.device)
        learner.critic_opt = torch.optim.Adam(learner.critic.parameters(), lr=cfg.critic_lr)
    return learner


def train_policy(episodes: Episodes, cfg: RLConfig, progress: bool = True) -> tuple[GaussianPolicy, list[dict]]:
    """Train a policy on ``episodes`` with ``cfg.algorithm``: every epoch visits the episodes in a random order, in
    batches of ``cfg.episodes_per_update``, each played once (:func:`rollout`) and used for one update. Returns the
    final policy (no model selection) and one history row per update. One seed fixes everything."""
    validate_rl_config(cfg)
    device = get_device(cfg.device)
    episodes = episodes.to(device)
    with _torch_settings(cfg.num_threads, device):
        seed_everything(cfg.seed)  # the random init of the policy mean and of the critic
        generator = torch.Generator(device).manual_seed(cfg.seed)
        learner = _learner(episodes, cfg)
        update = ALGORITHMS[cfg.algorithm]
        history: list[dict] = []
        bar = tqdm(total=cfg.epochs * math.ceil(len(episodes) / cfg.episodes_per_update), desc=f"RL {cfg.algorithm}",
                   leave=False, disable=progress_disabled(progress))
        for epoch in range(1, cfg.epochs + 1):
            order = torch.randperm(len(episodes), generator=generator, device=device)
            for lo in range(0, len(episodes), cfg.episodes_per_update):
                batch = rollout(learner.policy, episodes, order[lo:lo + cfg.episodes_per_update], cfg, generator)
                stats = update(learner, batch, cfg)
                if not all(torch.isfinite(p).all() for p in learner.policy.parameters()):
                    raise FloatingPointError(f"the {cfg.algorithm} policy diverged (non-finite weights) at update "
                                             f"{len(history) + 1}; lower lr (now {cfg.lr})")
                history.append({"epoch": epoch, "update": len(history) + 1, "reward": batch.rewards.mean().item(),
                                "final_rank": batch.ranks[:, -1].float().mean().item(),
                                "inv_rank": (1.0 / batch.ranks.float()).mean().item(),
                                "std": learner.policy.log_std.exp().mean().item(), **stats})
                bar.update(1)
                bar.set_postfix(epoch=epoch, reward=f"{history[-1]['reward']:.4f}")
        bar.close()
    return learner.policy.eval(), history


def train_policies(episodes: Episodes, cfgs: Sequence[RLConfig], workers: int | None = None,
                   progress: bool = True) -> list[tuple[GaussianPolicy, list[dict]]]:
    """:func:`train_policy` for several configurations, side by side on the CPU as
    :func:`sbir_core.cache.cached_fit_many` trains supervised runs: every run on ONE thread (``num_threads=1``, so its
    result does not depend on the core count), ``workers`` processes at once (default: one per usable core). Runs on
    CUDA train one after the other."""
    cfgs = [validate_rl_config(cfg) for cfg in cfgs]
    if any(get_device(cfg.device).type != "cpu" for cfg in cfgs):
        return [train_policy(episodes, cfg, progress) for cfg in cfgs]
    cfgs = [dataclasses.replace(cfg, num_threads=1) for cfg in cfgs]
    workers = min(len(cfgs), usable_cpus() if workers is None else workers)
    if workers <= 1:
        return [train_policy(episodes, cfg, progress) for cfg in cfgs]
    return map_in_processes(train_policy, [(episodes, cfg, False) for cfg in cfgs], workers, "RL runs", progress)


# --- evaluation -------------------------------------------------------------------------------------------------------
@torch.no_grad()
def episode_ranks(embedder: Callable[[torch.Tensor], torch.Tensor], episodes: Episodes,
                  chunk: int = 256) -> torch.Tensor:
    """Ranks (Q, T) of the true photos when ``embedder`` maps the features (q, T, D) to embeddings (q, T, E)."""
    out = []
    for lo in range(0, len(episodes), chunk):
        emb = embedder(episodes.features[lo:lo + chunk])
        out.append(rank_of_target(emb, episodes.photos, episodes.targets[lo:lo + chunk]))
    return torch.cat(out).cpu()


def evaluate_policy(policy: GaussianPolicy, episodes: Episodes, deterministic: bool = True,
                    seed: int = 0) -> torch.Tensor:
    """Ranks (Q, T) of the policy's actions: the mean (default), or sampled as the released code evaluates."""
    device = next(policy.parameters()).device
    episodes = episodes.to(device)
    generator = torch.Generator(device).manual_seed(seed)
    return episode_ranks(lambda f: policy.act(f, deterministic, generator), episodes)


def evaluate_supervised(episodes: Episodes) -> torch.Tensor:
    """Ranks (Q, T) of baseline B1: the frozen supervised model on the partial sketches."""
    return episode_ranks(episodes.head, episodes)


# --- run folders ------------------------------------------------------------------------------------------------------
def save_policy_run(out: str | Path, policy: GaussianPolicy, cfg: RLConfig, history: list[dict],
                    record: dict[str, Any]) -> None:
    """Write ``policy.pt``, ``config.json`` (``{"rl": cfg, **record}``, e.g. the base run) and ``history.jsonl``,
    each atomically."""
    out = Path(out)
    with atomic_path(out / POLICY) as tmp:
        torch.save({"state": {k: v.cpu() for k, v in policy.state_dict().items()},
                    "in_dim": policy.mean.in_features, "out_dim": policy.mean.out_features}, tmp)
    with atomic_path(out / CONFIG) as tmp:
        tmp.write_text(json.dumps({"rl": cfg.to_dict(), **record}, indent=2, sort_keys=True) + "\n")
    with atomic_path(out / HISTORY) as tmp:
        tmp.write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in history))


def load_policy_run(run_dir: str | Path, device: str | torch.device = "cpu") -> tuple[RLConfig, dict, GaussianPolicy]:
    """The RL configuration, the whole ``config.json`` record and the policy of a folder written by
    :func:`save_policy_run` (``sbir onthefly train``)."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG).exists():
        raise FileNotFoundError(f"{run_dir / CONFIG}: not an on-the-fly run folder (no config.json)")
    try:
        record = json.loads((run_dir / CONFIG).read_text())
        cfg = RLConfig(**record["rl"])
    except (ValueError, KeyError, TypeError) as err:
        raise DataError(f"not an on-the-fly run configuration ({type(err).__name__}: {err})",
                        run_dir / CONFIG) from None
    if not (run_dir / POLICY).exists():
        raise FileNotFoundError(f"{run_dir / POLICY}: no policy (the training has not finished)")
    state = torch.load(run_dir / POLICY, map_location="cpu", weights_only=True)
    policy = GaussianPolicy(state["in_dim"], state["out_dim"])
    policy.load_state_dict(state["state"])
    return cfg, record, policy.to(device).eval()


__all__ = ["ALGORITHMS", "KL_BETA_RANGE", "REWARDS", "Episodes", "GaussianPolicy", "Learner", "RLConfig", "Rollout",
           "build_episodes", "conjugate_gradient", "discounted_returns", "episode_ranks", "episodes_from_split",
           "evaluate_policy", "evaluate_supervised", "gallery_distances", "global_reward", "kendall_tau_b",
           "kendall_tau_distances", "load_policy_run", "n_steps", "override_rl", "ppo_update", "rank_of_target",
           "rollout", "save_policy_run", "step_rewards", "target_ranks", "train_policies",
           "train_policy", "trpo_update", "validate_rl_config", "vpg_update"]
