"""Adaptive FG-SBIR (Bhunia et al., ECCV 2022): meta-learning that adapts a retrieval model to a new category or a
new drawer from k sketch-photo pairs.

The poster (``shared/papers``) gives the design; the meta-learning code was never published, so the details below
are ours and are marked as such.

* **Model.** A feature extractor F, the Siamese network with spatial attention of chapter 03 (``model.name =
  "attention"``) up to its pooled features, and a meta-learning head M, its final fully connected layer followed by L2
  normalisation (:func:`sbir_core.models.split_final_layer`).
* **Tasks.** A task is k support and q query sketches (each of a different photo) with their photos and one random
  other photo of the same category as the negative: one category (``level="category"``), or one drawer of one category
  (``level="user"``).
* **Inner loop** (poster: "inner loop update on the final joint-feature embedding layer"): ``inner_steps`` gradient
  steps on M alone with the support triplet loss (a smooth hinge, :func:`soft_triplet`), vectorised over the tasks of
  a meta-batch with ``torch.func`` (``vmap`` of ``grad``); ``adapt="all"`` adapts every parameter instead (MAML),
  task by task through ``torch.func.functional_call``. Second order by default; ``first_order`` drops the inner
  gradient's own gradient; ``inner_update="sign"`` steps by the gradient's sign (sign-MAML, Fan et al. 2021).
* **Meta-learned margin** (poster: "meta learn the margin value used in the triplet loss on the fly"): a small network
  predicts the inner loop's triplet margin from the support set's features, ``mu = softplus(g(mean_k [F(s_k),
  F(p_k)]))``. The query (outer) loss always uses the fixed margin ``margin0``, so the predicted margin is learned only
  through what it does to adaptation, which needs the second-order gradient (ours, not in the poster).
* **Regularisers** on F's output in the outer loop (poster, eqs. L_D, L_C, L_ud, L_s): L_D, a sketch/photo domain
  discriminator behind a gradient-reversal layer (as doodle2search); L_C, category classification, or, when the tasks
  have one category (``level="user"``), the intra-category triplet loss L_ud on F's features; L_S, a decoder that
  reconstructs the category's embedding, with the cosine loss ``(1 - cos) / 2``. No word vectors can be downloaded
  here: the embedding of a category is the L2-normalised bag of words of its part and attribute vocabulary
  (:func:`vocabulary_embeddings`), or a user's JSON file ``{category: [floats]}`` (``semantic_file``).

Meta-training starts from the supervised model of the seen categories (the "no adaptation" baseline, trained through
the run cache), as the group's baselines do. ``sbir meta train`` / ``sbir meta adapt`` are the command line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap
from tqdm.auto import tqdm

from sbir_core.config import RunConfig, override, override_fields, preset, validate_config
from sbir_core.data.split import FGSBIRData
from sbir_core.data.views import eval_views, random_views
from sbir_core.errors import ConfigError, DataError
from sbir_core.losses import pairwise_distance
from sbir_core.metrics import retrieval_metrics
from sbir_core.models import SBIRModel, build_model, photo_input, sketch_input, split_final_layer
from sbir_core.runtime import atomic_path, get_device, progress_disabled, seed_everything
from sbir_core.train import SplitTensors, _torch_settings, embed

LEVELS = ("category", "user")
ADAPT = ("head", "all")
INNER_UPDATES = ("sgd", "sign")
MARGINS = ("learned", "fixed")


@dataclass
class MetaConfig:
    """Everything a meta-training run and its adaptation need; ``meta_preset(name)`` gives the methods compared."""

    level: str = "category"  # a task is one category ("category") or one drawer of one category ("user")
    held_out: list[str] = field(default_factory=list)  # categories (category level) or drawer ids (user level) left out
    category: str = "shoe"  # user level: the category whose drawers make the tasks
    shots: int = 5  # k: support pairs per task
    queries: int = 8  # q: query pairs per task, for the outer loss
    tasks_per_batch: int = 4  # tasks per outer step (vectorised with vmap for adapt="head")
    meta_steps: int = 200  # outer steps (0: the supervised start alone)
    outer_lr: float = 3e-4  # Adam, on every parameter (F, M, margin network, regulariser heads)
    adapt: str = "head"  # what the inner loop adapts: the head M ("head", ours and ANIL) or everything ("all", MAML)
    inner_steps: int = 1  # gradient steps of the inner loop (training and adaptation)
    inner_lr: float = 0.1  # step size of the inner loop
    inner_update: str = "sgd"  # "sgd", or "sign" (sign-MAML: the sign of the gradient)
    first_order: bool = False  # drop the second-order term (FOMAML); a learned margin then gets no gradient
    margin: str = "learned"  # the inner loop's margin: predicted per task ("learned") or margin0 ("fixed")
    margin0: float = 0.3  # the fixed margin: of the outer loss always, of the inner loop when margin="fixed"
    temperature: float = 0.05  # of the inner loop's smooth hinge (see soft_triplet); the hinge as it tends to 0
    lambda_domain: float = 0.1  # L_D (gradient reversal on F)
    lambda_class: float = 0.1  # L_C (category level) or L_ud (user level)
    lambda_semantic: float = 0.1  # L_S
    semantic_file: str | None = None  # JSON {category: [floats]}; None: the vocabulary embedding
    pretrain_epochs: int = 10  # the supervised start (the "no adaptation" baseline), through the run cache
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None


#: The methods compared in chapter 06 (the poster's table): which parts of ``MetaConfig`` each one sets.
METHODS: dict[str, dict[str, Any]] = {
    "ours": {},  # head-only inner loop, learned margin, the three regularisers
    "anil": {"margin": "fixed", "lambda_domain": 0.0, "lambda_class": 0.0, "lambda_semantic": 0.0},
    "maml": {"adapt": "all", "margin": "fixed", "lambda_domain": 0.0, "lambda_class": 0.0, "lambda_semantic": 0.0},
    "sign-maml": {"adapt": "all", "inner_update": "sign", "margin": "fixed", "lambda_domain": 0.0,
                  "lambda_class": 0.0, "lambda_semantic": 0.0},
}


def meta_preset(method: str = "ours", **changes: Any) -> MetaConfig:
    """The ``MetaConfig`` of ``method`` (a key of ``METHODS``), with ``changes`` on top."""
    if method not in METHODS:
        raise ConfigError("method", f"{method!r} is not one of {', '.join(METHODS)}")
    return validate_meta_config(dataclasses.replace(MetaConfig(), **{**METHODS[method], **changes}))


def validate_meta_config(cfg: MetaConfig) -> MetaConfig:
    """Check ``cfg`` before anything is built; raise ``ConfigError`` naming the first bad key. Returns ``cfg``."""
    for key, choices in (("level", LEVELS), ("adapt", ADAPT), ("inner_update", INNER_UPDATES), ("margin", MARGINS)):
        if getattr(cfg, key) not in choices:
            raise ConfigError(key, f"{getattr(cfg, key)!r} is not one of {', '.join(choices)}")
    for key in ("shots", "queries", "tasks_per_batch", "pretrain_epochs", "outer_lr", "inner_lr", "margin0",
                "temperature"):
        if not getattr(cfg, key) > 0:
            raise ConfigError(key, f"must be positive, got {getattr(cfg, key)}")
    for key in ("meta_steps", "inner_steps", "lambda_domain", "lambda_class", "lambda_semantic"):
        if getattr(cfg, key) < 0:
            raise ConfigError(key, f"must not be negative, got {getattr(cfg, key)}")
    if cfg.adapt == "all":  # MAML's inner loop takes neither the margin network nor the regularisers' features
        if cfg.margin == "learned":
            raise ConfigError("margin", "the all-parameters inner loop (adapt=all) uses the fixed margin: set "
                              "margin=fixed")
        for key in ("lambda_domain", "lambda_class", "lambda_semantic"):
            if getattr(cfg, key):
                raise ConfigError(key, "the all-parameters inner loop (adapt=all) trains without the regularisers: "
                                  "set it to 0")
    if cfg.margin == "learned" and (cfg.first_order or cfg.inner_update == "sign" or cfg.inner_steps == 0):
        raise ConfigError("margin", "a learned margin is learned through the inner step's gradient: it needs "
                          "first_order=false, inner_update=sgd and inner_steps >= 1")
    return cfg


def override_meta(cfg: MetaConfig, assignments: Sequence[str]) -> MetaConfig:
    """``["shots=1", "held_out=[\\"mug\\"]"]`` applied to a copy of ``cfg``, then validated."""
    return validate_meta_config(override_fields(cfg, assignments, "meta-learning setting"))


# --- tasks ------------------------------------------------------------------------------------------------------------
@dataclass
class Pool:
    """What tasks are drawn from: a training split in memory, with the category and drawer of each sketch."""

    name: str  # the category, or "<category>/drawer <d>"
    data: SplitTensors
    category: int  # index into the run's list of categories
    drawers: np.ndarray  # (n_sketches,) drawer id per sketch; -1 where unknown (real data)


def sketch_drawers(dataset: FGSBIRData, split: str = "train") -> np.ndarray:
    """The drawer of each sketch of ``dataset``'s split from the synthetic benchmark's sidecar metadata; -1 if none."""
    sketches = dataset.meta.get("sketches", {})
    keys = getattr(dataset, split).sketch_keys
    return np.array([int(sketches.get(k, {}).get("drawer", -1)) for k in keys], dtype=np.int64)


def keep_sketches(data: SplitTensors, keep: np.ndarray) -> SplitTensors:
    """The sketches ``keep`` (indices) with every photo of the split: a drawer's sketches against the whole gallery."""
    keep = torch.as_tensor(np.asarray(keep, dtype=np.int64))
    return SplitTensors(data.sketches[keep], data.photos, data.positives[keep], list(data.photo_names))


def concat_splits(splits: Sequence[SplitTensors]) -> SplitTensors:
    """Several splits as one (photos side by side, positives re-indexed): the seen categories' supervised start."""
    offsets = np.cumsum([0] + [s.n_photos for s in splits[:-1]])
    return SplitTensors(torch.cat([s.sketches for s in splits]), torch.cat([s.photos for s in splits]),
                        torch.cat([s.positives + int(o) for s, o in zip(splits, offsets)]),
                        [n for s in splits for n in s.photo_names])


def supervised_split(pools: Sequence[Pool], level: str) -> SplitTensors:
    """The supervised start's training data: the seen categories side by side, or (user level) the seen drawers'
    sketches against their category's one gallery (side by side, every photo would be its own negative's twin)."""
    if level == "category":
        return concat_splits([p.data for p in pools])
    gallery = pools[0].data
    return SplitTensors(torch.cat([p.data.sketches for p in pools]), gallery.photos,
                        torch.cat([p.data.positives for p in pools]), list(gallery.photo_names))


def held_out_splits(datasets: dict[str, FGSBIRData], cfg: MetaConfig, data_size: int
                    ) -> dict[str, tuple[SplitTensors, np.ndarray | None, SplitTensors]]:
    """What adaptation is tested on, by name ("teapot", "drawer 8"): the training split a support is drawn from, the
    sketches of it allowed (None: all; at user level, the drawer's), and the test split (at user level, the drawer's
    test sketches against the category's whole test gallery)."""
    if cfg.level == "category":
        return {c: (SplitTensors.from_split(datasets[c].train, data_size), None,
                    SplitTensors.from_split(datasets[c].test, data_size)) for c in cfg.held_out}
    dataset = datasets[cfg.category]
    train = SplitTensors.from_split(dataset.train, data_size)
    test = SplitTensors.from_split(dataset.test, data_size)
    drawers = {split: sketch_drawers(dataset, split) for split in ("train", "test")}
    return {f"drawer {d}": (train, np.flatnonzero(drawers["train"] == int(d)),
                            keep_sketches(test, np.flatnonzero(drawers["test"] == int(d)))) for d in cfg.held_out}


@dataclass
class TaskBatch:
    """T tasks of n = k + q triplets each; images are uint8 at the data size, the first k of each task the support."""

    sketches: torch.Tensor  # (T, n, S, S)
    positives: torch.Tensor  # (T, n, S, S, 3)
    negatives: torch.Tensor  # (T, n, S, S, 3)
    categories: torch.Tensor  # (T,) category index of each task


def draw_triplets(data: SplitTensors, sketch_pool: np.ndarray, n: int, rng: np.random.Generator,
                  what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` sketches of ``sketch_pool`` (indices), each of a different photo, with a random other photo as the
    negative: (sketch, positive, negative) index arrays. ``DataError`` naming ``what`` when there are too few."""
    positives = data.positives.numpy()
    order = rng.permutation(np.asarray(sketch_pool))
    _, first = np.unique(positives[order], return_index=True)
    chosen = order[np.sort(first)][:n]
    if len(chosen) < n or data.n_photos < 2:
        raise DataError(f"{what}: {n} sketches of different photos were asked for, only {len(chosen)} are there "
                        f"(of {data.n_photos} photos)")
    pos = positives[chosen]
    neg = (pos + rng.integers(1, data.n_photos, size=n)) % data.n_photos  # uniform over the other photos
    return chosen, pos, neg


def sample_tasks(pools: Sequence[Pool], cfg: MetaConfig, rng: np.random.Generator) -> TaskBatch:
    """``cfg.tasks_per_batch`` tasks, each from a pool drawn uniformly (and, at user level, from one drawer)."""
    n = cfg.shots + cfg.queries
    out: list[tuple] = []
    for _ in range(cfg.tasks_per_batch):
        pool = pools[int(rng.integers(len(pools)))]
        s, p, q = draw_triplets(pool.data, np.arange(len(pool.data)), n, rng, pool.name)
        out.append((pool.data.sketches[s], pool.data.photos[p], pool.data.photos[q], pool.category))
    return TaskBatch(*(torch.stack([o[i] for o in out]) for i in range(3)),
                     torch.tensor([o[3] for o in out], dtype=torch.long))


def task_pools(datasets: dict[str, FGSBIRData], cfg: MetaConfig, data_size: int,
               categories: list[str]) -> list[Pool]:
    """The meta-training pools: every category not held out, or (user level) every drawer not held out of
    ``cfg.category``."""
    if cfg.level == "category":
        seen = [c for c in categories if c not in cfg.held_out]
        return [Pool(c, SplitTensors.from_split(datasets[c].train, data_size), categories.index(c),
                     sketch_drawers(datasets[c])) for c in seen]
    data = SplitTensors.from_split(datasets[cfg.category].train, data_size)
    drawers = sketch_drawers(datasets[cfg.category])
    seen = sorted({int(d) for d in drawers if d >= 0 and str(int(d)) not in cfg.held_out})
    if not seen:
        raise ConfigError("level", f"user level needs the drawer of each sketch; {cfg.category} has none that is "
                          f"not held out")
    return [Pool(f"{cfg.category}/drawer {d}", keep_sketches(data, np.flatnonzero(drawers == d)),
                 categories.index(cfg.category), np.full(int((drawers == d).sum()), d)) for d in seen]


def usable_pools(pools: Sequence[Pool], cfg: MetaConfig) -> list[Pool]:
    """The pools with sketches of at least ``shots + queries`` different photos (a task needs that many); a
    ``ConfigError`` naming ``shots`` when none has. The run records which pools it used."""
    n = cfg.shots + cfg.queries
    usable = [p for p in pools if len(np.unique(p.data.positives.numpy())) >= n]
    if not usable:
        raise ConfigError("shots", f"a task needs sketches of shots + queries = {n} different photos; no pool has "
                          f"that many ({', '.join(p.name for p in pools)})")
    return usable


# --- the semantic embedding of a category ----------------------------------------------------------------------------
def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def vocabulary_embeddings(schemas: dict[str, dict[str, list[str]]]) -> dict[str, list[float]]:
    """Each category's L2-normalised bag of words over the part and attribute vocabulary of all ``schemas``
    ({category: {attribute: [values]}}): categories that share parts ("handle", "rim", "base") share directions."""
    bags = {c: sorted({w for attr, values in s.items() for t in (attr, *values) for w in _words(t)})
            for c, s in schemas.items()}
    vocab = sorted({w for bag in bags.values() for w in bag})
    index = {w: i for i, w in enumerate(vocab)}
    out = {}
    for c, bag in bags.items():
        v = np.zeros(len(vocab))
        v[[index[w] for w in bag]] = 1.0
        out[c] = (v / max(np.linalg.norm(v), 1e-12)).tolist()
    return out


def read_embedding_file(path: str | Path, categories: Sequence[str]) -> dict[str, list[float]]:
    """A user's category embeddings: JSON ``{category: [floats]}``, one finite vector of one length per category."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the category embeddings ({err})", path) from None
    if not isinstance(raw, dict):
        raise DataError("category embeddings must be a JSON object {category: [floats]}", path)
    missing = [c for c in categories if c not in raw]
    if missing:
        raise DataError(f"no embedding for categories {missing}", path)
    vectors = {}
    for c in categories:
        v = np.asarray(raw[c], dtype=np.float64) if isinstance(raw[c], list) else np.zeros(0)
        if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all() or not np.linalg.norm(v) > 0:
            raise DataError(f"the embedding of {c!r} is not a non-zero list of finite numbers", path)
        vectors[c] = v.tolist()
    if len({len(v) for v in vectors.values()}) != 1:
        raise DataError("the category embeddings differ in length", path)
    return vectors


# --- the model --------------------------------------------------------------------------------------------------------
class GradientReversal(torch.autograd.Function):
    """Identity forward, negated gradient backward (Ganin & Lempitsky, ICML 2015): F learns to fool the
    discriminator that learns to tell sketches from photos."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:
        return -g


def _mlp(d_in: int, hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, d_out))


class MetaLearner(nn.Module):
    """F and M (one Siamese network, split at its final layer), the margin network and the three regulariser heads."""

    def __init__(self, model: SBIRModel, n_categories: int, semantic: torch.Tensor, margin0: float) -> None:
        super().__init__()
        if not model.shared:
            raise ConfigError("model.shared", "meta-learning adapts one Siamese network; this model has two branches")
        self.net = model.sketch.to(memory_format=torch.channels_last)  # as the trainer runs it
        d = split_final_layer(self.net)[1].in_features
        self.margin_net = _mlp(2 * d, 32, 1)
        with torch.no_grad():  # start at the fixed margin: softplus(b) = margin0
            self.margin_net[-1].weight.zero_()
            self.margin_net[-1].bias.fill_(math.log(math.expm1(margin0)))
        self.discriminator = _mlp(d, 64, 1)
        self.classifier = nn.Linear(d, n_categories)
        self.decoder = _mlp(d, 64, semantic.shape[1])
        self.register_buffer("semantic", semantic.float())

    @property
    def head(self) -> nn.Linear:
        return split_final_layer(self.net)[1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """F: the pooled (attended) features, before the head."""
        return split_final_layer(self.net)[0](x)

    def head_params(self) -> dict[str, torch.Tensor]:
        return {"weight": self.head.weight, "bias": self.head.bias}

    def predict_margin(self, sketch_feats: torch.Tensor, photo_feats: torch.Tensor) -> torch.Tensor:
        """The inner loop's margin from the support set's features (..., k, d) each: (...,) positive values."""
        stats = torch.cat([sketch_feats.mean(-2), photo_feats.mean(-2)], dim=-1)
        return F.softplus(self.margin_net(stats)).squeeze(-1)


def head_embed(params: dict[str, torch.Tensor], feats: torch.Tensor) -> torch.Tensor:
    """M: the final layer and L2 normalisation, with the given (possibly adapted) parameters."""
    return F.normalize(F.linear(feats, params["weight"], params["bias"]), dim=-1)


def triplet(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: torch.Tensor | float) -> torch.Tensor:
    """The book's triplet loss: squared Euclidean distances, ``mean(max(0, margin + d(a, p) - d(a, n)))``."""
    return torch.relu(margin + (a - p).pow(2).sum(-1) - (a - n).pow(2).sum(-1)).mean()


def soft_triplet(a: torch.Tensor, p: torch.Tensor, n: torch.Tensor, margin: torch.Tensor | float,
                 temperature: float) -> torch.Tensor:
    """The inner loop's triplet loss, a smooth hinge: ``mean(t * softplus((margin + d(a, p) - d(a, n)) / t))``.

    With the hinge itself the adapted weights would depend on the margin only through which triplets are active, so
    a predicted margin would get no gradient at all (ours, not in the poster)."""
    z = (margin + (a - p).pow(2).sum(-1) - (a - n).pow(2).sum(-1)) / temperature
    return (temperature * F.softplus(z)).mean()


def _support_loss(params: dict[str, torch.Tensor], fs: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor,
                  margin: torch.Tensor | float, temperature: float) -> torch.Tensor:
    return soft_triplet(head_embed(params, fs), head_embed(params, fp), head_embed(params, fn), margin, temperature)


def inner_step(params: dict[str, torch.Tensor], grads: dict[str, torch.Tensor], cfg: MetaConfig
               ) -> dict[str, torch.Tensor]:
    """One inner update: SGD or sign-SGD, with the gradient's own gradient dropped when ``first_order``."""
    out = {}
    for k, p in params.items():
        g = grads[k].detach() if cfg.first_order else grads[k]
        out[k] = p - cfg.inner_lr * (g.sign() if cfg.inner_update == "sign" else g)
    return out


def adapt_head(params: dict[str, torch.Tensor], fs: torch.Tensor, fp: torch.Tensor, fn: torch.Tensor,
               margin: torch.Tensor | float, cfg: MetaConfig, steps: int) -> dict[str, torch.Tensor]:
    """The inner loop on M: ``steps`` updates with the support triplets (features fs, fp, fn: (k, d))."""
    for _ in range(steps):
        params = inner_step(params, grad(_support_loss)(params, fs, fp, fn, margin, cfg.temperature), cfg)
    return params


# --- meta-training ----------------------------------------------------------------------------------------------------
def _views(images: torch.Tensor, size: int, gen: torch.Generator, photos: bool) -> torch.Tensor:
    flat = images.reshape(-1, *images.shape[2:])
    return (photo_input if photos else sketch_input)(random_views(flat, size, True, gen))


def regularisers(learner: MetaLearner, fs: torch.Tensor, fp: torch.Tensor, categories: torch.Tensor,
                 cfg: MetaConfig, fn: torch.Tensor) -> dict[str, torch.Tensor]:
    """L_D, L_C (or L_ud at user level) and L_S on F's features of the tasks' sketches ``fs`` and photos ``fp``
    (T, n, d), ``categories`` (T,); ``fn`` the negatives' features (for L_ud)."""
    out: dict[str, torch.Tensor] = {}
    d = fs.shape[-1]
    both = torch.cat([fs.reshape(-1, d), fp.reshape(-1, d)])
    labels = categories[:, None].expand(fs.shape[:2]).reshape(-1)
    if cfg.lambda_domain > 0:  # sketch = 1, photo = 0, through the gradient reversal
        logits = learner.discriminator(GradientReversal.apply(both)).squeeze(-1)
        target = torch.cat([torch.ones(len(labels)), torch.zeros(len(labels))]).to(logits)
        out["domain"] = F.binary_cross_entropy_with_logits(logits, target)
    if cfg.lambda_class > 0:
        if cfg.level == "category":
            out["class"] = F.cross_entropy(learner.classifier(both), torch.cat([labels, labels]))
        else:  # one category: intra-category triplets on F's (normalised) features, L_ud
            out["class"] = triplet(*(F.normalize(f.reshape(-1, d), dim=-1) for f in (fs, fp, fn)), cfg.margin0)
    if cfg.lambda_semantic > 0:
        target = learner.semantic[torch.cat([labels, labels])]
        out["semantic"] = 0.5 * (1 - F.cosine_similarity(learner.decoder(both), target, dim=-1)).mean()
    return out


def adapt_all(learner: MetaLearner, params: dict[str, torch.Tensor], xs: torch.Tensor, xp: torch.Tensor,
              xn: torch.Tensor, cfg: MetaConfig, steps: int) -> dict[str, torch.Tensor]:
    """The inner loop on every parameter of F and M (MAML), through ``functional_call``: ``steps`` updates with the
    support triplets (network inputs xs, xp, xn), second order unless ``cfg.first_order``."""
    buffers = dict(learner.net.named_buffers())
    for _ in range(steps):
        emb = [functional_call(learner.net, (params, buffers), (x,)) for x in (xs, xp, xn)]
        grads = torch.autograd.grad(soft_triplet(*emb, cfg.margin0, cfg.temperature), list(params.values()),
                                    create_graph=not cfg.first_order, allow_unused=True)
        params = inner_step(params, {name: (g if g is not None else torch.zeros_like(p))
                                     for (name, p), g in zip(params.items(), grads)}, cfg)
    return params


def _maml_query_loss(learner: MetaLearner, xs: torch.Tensor, xp: torch.Tensor, xn: torch.Tensor, k: int,
                     cfg: MetaConfig) -> torch.Tensor:
    """MAML's inner loop for one task (support = the first k), then its query loss."""
    params = adapt_all(learner, dict(learner.net.named_parameters()), xs[:k], xp[:k], xn[:k], cfg, cfg.inner_steps)
    buffers = dict(learner.net.named_buffers())
    return triplet(*(functional_call(learner.net, (params, buffers), (x[k:],)) for x in (xs, xp, xn)), cfg.margin0)


def outer_loss(learner: MetaLearner, batch: TaskBatch, cfg: MetaConfig, size: int,
               gen: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """The meta-objective of one batch of tasks: the query triplet loss after adaptation, plus the regularisers."""
    device = learner.semantic.device
    t, n = batch.sketches.shape[:2]
    k = cfg.shots
    xs = _views(batch.sketches, size, gen, photos=False).to(device)
    xp = _views(batch.positives, size, gen, photos=True).to(device)
    xn = _views(batch.negatives, size, gen, photos=True).to(device)
    row: dict[str, float] = {}
    if cfg.adapt == "all":  # MAML: task by task (BatchNorm keeps this out of vmap)
        query = torch.stack([_maml_query_loss(learner, xs[i * n:(i + 1) * n], xp[i * n:(i + 1) * n],
                                              xn[i * n:(i + 1) * n], k, cfg) for i in range(t)]).mean()
        row["query_loss"] = float(query.detach())
        return query, row
    feats = learner.features(torch.cat([xs, xp, xn]).contiguous(memory_format=torch.channels_last))
    fs, fp, fn = (f.reshape(t, n, -1) for f in feats.chunk(3))
    if cfg.margin == "learned":
        margins = learner.predict_margin(fs[:, :k], fp[:, :k])
        row["margin"] = float(margins.detach().mean())
    else:
        margins = torch.full((t,), cfg.margin0, device=device)

    def task_query_loss(fs_t, fp_t, fn_t, margin_t, params):
        adapted = adapt_head(params, fs_t[:k], fp_t[:k], fn_t[:k], margin_t, cfg, cfg.inner_steps)
        return triplet(*(head_embed(adapted, f[k:]) for f in (fs_t, fp_t, fn_t)), cfg.margin0)

    query = vmap(task_query_loss, in_dims=(0, 0, 0, 0, None))(fs, fp, fn, margins, learner.head_params()).mean()
    row["query_loss"] = float(query.detach())
    total = query
    weights = {"domain": cfg.lambda_domain, "class": cfg.lambda_class, "semantic": cfg.lambda_semantic}
    for name, value in regularisers(learner, fs, fp, batch.categories.to(device), cfg, fn).items():
        total = total + weights[name] * value
        row[name] = float(value.detach())
    return total, row


def meta_train(learner: MetaLearner, pools: Sequence[Pool], cfg: MetaConfig, size: int,
               progress: bool = True) -> list[dict[str, float]]:
    """``cfg.meta_steps`` outer steps of Adam on every parameter of ``learner``; returns one history row per step.
    One seed fixes the tasks, the views and the initialisation of the heads."""
    device = learner.semantic.device
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(learner.parameters(), lr=cfg.outer_lr)
    history = []
    learner.train()
    with _torch_settings(cfg.num_threads, device):
        for step in tqdm(range(cfg.meta_steps), desc=f"meta-train ({cfg.adapt} inner loop)", leave=False,
                         disable=progress_disabled(progress)):
            loss, row = outer_loss(learner, sample_tasks(pools, cfg, rng), cfg, size, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not all(torch.isfinite(p).all() for p in learner.parameters()):
                raise FloatingPointError(f"meta-training diverged at step {step + 1}: a weight is not finite "
                                         f"(lower outer_lr or inner_lr)")
            history.append({"step": step + 1, **row})
    learner.eval()
    return history


# --- adaptation and evaluation ----------------------------------------------------------------------------------------
@dataclass
class Support:
    """k support triplets of one new category or drawer, as uint8 images at the data size."""

    sketches: torch.Tensor
    positives: torch.Tensor
    negatives: torch.Tensor


def draw_support(train: SplitTensors, shots: int, seed: int, sketch_pool: np.ndarray | None = None,
                 what: str = "the training split") -> Support:
    """``shots`` support triplets from ``train`` (its sketches ``sketch_pool``, default all), seeded."""
    if shots < 1:
        raise ConfigError("shots", f"must be at least 1, got {shots}")
    pool = np.arange(len(train)) if sketch_pool is None else sketch_pool
    s, p, n = draw_triplets(train, pool, shots, np.random.default_rng(seed), what)
    return Support(train.sketches[s], train.photos[p], train.photos[n])


def _centre(images: torch.Tensor, size: int, photos: bool) -> torch.Tensor:
    top, left, _ = eval_views(images.shape[1], size, False)[0]
    x = images[:, top:top + size, left:left + size]
    return photo_input(x) if photos else sketch_input(x)


@torch.no_grad()
def support_margin(learner: MetaLearner, support: Support, size: int) -> float:
    """The inner-loop margin the margin network predicts for ``support`` (chapter 06's margins per category)."""
    learner.eval()
    device = learner.semantic.device
    feats = [learner.features(_centre(x, size, photos=i > 0).to(device).contiguous(memory_format=torch.channels_last))
             for i, x in enumerate((support.sketches, support.positives))]
    return float(learner.predict_margin(*feats))


def adapt(learner: MetaLearner, support: Support, cfg: MetaConfig, size: int, steps: int | None = None,
          what: str | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """Adapt to ``support`` and return the adapted embedding ``x -> M'(F'(x))`` (network input to unit vectors).

    ``what`` is ``cfg.adapt`` unless given: "head" (M, with the learned or fixed margin as configured) or "all"
    (fine-tuning every parameter, with the fixed margin). ``steps=0`` is no adaptation."""
    steps = cfg.inner_steps if steps is None else steps
    what = what or cfg.adapt
    device = learner.semantic.device
    learner.eval()
    xs, xp, xn = (_centre(x, size, photos=i > 0).to(device)
                  for i, x in enumerate((support.sketches, support.positives, support.negatives)))
    with torch.no_grad():
        fs, fp, fn = (learner.features(x.contiguous(memory_format=torch.channels_last)) for x in (xs, xp, xn))
        margin = learner.predict_margin(fs, fp) if cfg.margin == "learned" and what == "head" else cfg.margin0
    if what == "head":
        params = {k: v.detach() for k, v in learner.head_params().items()}
        params = adapt_head(params, fs, fp, fn, margin, dataclasses.replace(cfg, first_order=True), steps)
        return lambda x: head_embed(params, learner.features(x))
    params = {k: v.detach().requires_grad_(True) for k, v in learner.net.named_parameters()}
    with torch.enable_grad():  # also when called under no_grad
        params = adapt_all(learner, params, xs, xp, xn, dataclasses.replace(cfg, first_order=True), steps)
    frozen, buffers = {k: v.detach() for k, v in params.items()}, dict(learner.net.named_buffers())
    return lambda x: functional_call(learner.net, (frozen, buffers), (x,))


@torch.no_grad()
def test_distances(embed_fn: Callable[[torch.Tensor], torch.Tensor], test: SplitTensors, size: int,
                   device: torch.device, batch_size: int = 64) -> torch.Tensor:
    """(n_sketches, n_photos) squared distances of ``test``'s sketches to its photos under ``embed_fn``."""
    view = eval_views(test.sketches.shape[1], size, False)[0]
    s = embed(embed_fn, test.sketches, sketch_input, size, view, device, batch_size)
    p = embed(embed_fn, test.photos, photo_input, size, view, device, batch_size)
    return pairwise_distance(s, p, squared=True).cpu()


def retrieval(embed_fn: Callable[[torch.Tensor], torch.Tensor], test: SplitTensors, size: int,
              device: torch.device, batch_size: int = 64) -> dict[str, float]:
    """acc@1/5/10 (and the rest of ``retrieval_metrics``) of ``test``'s sketches against its photos."""
    return retrieval_metrics(test_distances(embed_fn, test, size, device, batch_size), test.positives)


test_distances.__test__ = False  # a library function, not a pytest test


# --- runs -------------------------------------------------------------------------------------------------------------
META_RUN = "meta_run.json"
WEIGHTS = "meta_weights.pt"


@dataclass
class MetaRun:
    """A meta-trained model and what it was trained on."""

    learner: MetaLearner
    meta: MetaConfig
    run: RunConfig  # the network (model.*) and the data size (train.data_size)
    categories: list[str]
    semantic: dict[str, list[float]]
    history: list[dict[str, float]] = field(default_factory=list)
    supervised: dict[str, Any] = field(default_factory=dict)  # the supervised start: epochs, cached, the task pools
    meta_time_s: float = 0.0  # the meta-training's wall time (0 when it was loaded or had no steps)


def base_run_config(run: RunConfig | None = None, epochs: int = 10, seed: int = 0) -> RunConfig:
    """The network of the supervised start: chapter 03's Siamese network with spatial attention (book preset)."""
    run = run or preset("book")
    return validate_config(override(run, ["model.name=attention", f"train.epochs={epochs}", f"seed={seed}"]))


def build_meta_run(datasets: dict[str, FGSBIRData], cfg: MetaConfig, run: RunConfig | None = None,
                   progress: bool = True) -> MetaRun:
    """The supervised start on the seen pools through the run cache, then (``meta_steps``) meta-training."""
    from sbir_core.cache import cached_fit

    cfg = validate_meta_config(cfg)
    categories = sorted(datasets)
    unknown = [c for c in cfg.held_out if cfg.level == "category" and c not in categories]
    if unknown:
        raise ConfigError("held_out", f"categories {unknown} are not in the collection ({', '.join(categories)})")
    if cfg.level == "user" and cfg.category not in datasets:
        raise ConfigError("category", f"{cfg.category!r} is not in the collection ({', '.join(categories)})")
    device = get_device(cfg.device)
    seed_everything(cfg.seed)
    run = base_run_config(run, cfg.pretrain_epochs, cfg.seed)
    if cfg.num_threads:
        run = override(run, [f"train.num_threads={cfg.num_threads}"])
    size = run.model.input_size
    pools = usable_pools(task_pools(datasets, cfg, run.train.data_size, categories), cfg)
    if cfg.semantic_file:
        semantic = read_embedding_file(cfg.semantic_file, categories)
    else:
        semantic = vocabulary_embeddings({c: datasets[c].meta.get("attributes", {}) or {c: [c]}
                                          for c in categories})
    seen = supervised_split(pools, cfg.level)
    supervised = cached_fit(run, seen, device=device, progress=progress)
    seed_everything(cfg.seed)
    learner = MetaLearner(supervised.model, len(categories),
                          torch.tensor([semantic[c] for c in categories]), cfg.margin0).to(device)
    start = time.perf_counter()
    history = meta_train(learner, pools, cfg, size, progress) if cfg.meta_steps else []
    return MetaRun(learner, cfg, run, categories, semantic, history,
                   {"epochs": run.train.epochs, "cached": supervised.cached, "pools": [p.name for p in pools],
                    "train_sketches": len(seen), "train_time_s": supervised.wall_time_s},
                   time.perf_counter() - start if cfg.meta_steps else 0.0)


def save_meta_run(out: str | Path, result: MetaRun, command: str | None = None) -> Path:
    """``meta_run.json`` (settings, categories, embeddings, history) and ``meta_weights.pt``, each atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        torch.save(result.learner.state_dict(), tmp)
    record = {"kind": "sbir-meta-run", "meta": dataclasses.asdict(result.meta), "run": result.run.to_dict(),
              "categories": result.categories, "semantic": result.semantic, "history": result.history,
              "supervised": result.supervised, "command": command}
    with atomic_path(out / META_RUN) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return out


def load_meta_run(run_dir: str | Path, device: str | torch.device = "cpu") -> MetaRun:
    """A run written by :func:`save_meta_run`; ``DataError`` naming the file when it is not one or is damaged."""
    run_dir = Path(run_dir)
    path = run_dir / META_RUN
    try:
        record = json.loads(path.read_text())
        if record.get("kind") != "sbir-meta-run":
            raise ValueError("not a meta-learning run")
        meta = validate_meta_config(MetaConfig(**record["meta"]))
        run = RunConfig.from_dict(record["run"])
        categories = list(record["categories"])
        semantic = {c: record["semantic"][c] for c in categories}
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
        raise DataError(f"not a meta-learning run of sbir meta train ({err})", path) from None
    model = build_model(run.model)
    learner = MetaLearner(model, len(categories), torch.tensor([semantic[c] for c in categories]), meta.margin0)
    try:
        state = torch.load(run_dir / WEIGHTS, map_location="cpu", weights_only=True)
        learner.load_state_dict(state)
    except Exception as err:  # a truncated file, another model's weights
        raise DataError(f"the weights do not load into this run's model ({' '.join(str(err).split())[:200]})",
                        run_dir / WEIGHTS) from None
    return MetaRun(learner.to(device).eval(), meta, run, categories, semantic, record.get("history", []),
                   record.get("supervised", {}))


def adaptation_results(result: MetaRun, dataset: FGSBIRData, shots: Sequence[int], seeds: Sequence[int] = (0,),
                       steps: int | None = None, drawer: int | None = None,
                       what: str | None = None) -> Iterator[dict[str, Any]]:
    """acc@K before and after adapting ``result`` to ``dataset`` from each number of ``shots`` training pairs, the
    support drawn with each of ``seeds``; with ``drawer``, to that drawer's sketches (support from its training
    sketches, queries its test sketches). The splits are rendered, and "before" scored, once."""
    size, data_size = result.run.model.input_size, result.run.train.data_size
    device = result.learner.semantic.device
    train = SplitTensors.from_split(dataset.train, data_size)
    test = SplitTensors.from_split(dataset.test, data_size)
    pool = None
    if drawer is not None:
        pool = np.flatnonzero(sketch_drawers(dataset, "train") == drawer)
        test = keep_sketches(test, np.flatnonzero(sketch_drawers(dataset, "test") == drawer))
        if len(test) == 0:
            raise DataError(f"drawer {drawer} has no test sketches in {dataset.name}", dataset.root)
    too_many = [k for k in shots if k > len(train)]
    if too_many:
        raise ConfigError("shots", f"{too_many[0]} support pairs were asked for, {dataset.name} has {len(train)} "
                          f"training sketches")
    with _torch_settings(result.meta.num_threads, device):
        result.learner.eval()
        before = retrieval(lambda x: result.learner.net(x), test, size, device)
        for k in shots:
            for seed in seeds:
                support = draw_support(train, k, seed, pool, f"{dataset.name} training split")
                after = retrieval(adapt(result.learner, support, result.meta, size, steps, what), test, size, device)
                yield {"dataset": dataset.name, "shots": k, "seed": seed, "drawer": drawer,
                       "steps": result.meta.inner_steps if steps is None else steps,
                       "adapted": what or result.meta.adapt, "before": before, "after": after}


def adaptation_result(result: MetaRun, dataset: FGSBIRData, shots: int, steps: int | None = None, seed: int = 0,
                      drawer: int | None = None, what: str | None = None) -> dict[str, Any]:
    """:func:`adaptation_results` for one number of shots and one seed."""
    return next(adaptation_results(result, dataset, [shots], [seed], steps, drawer, what))


def study_hits(rows: Sequence[dict[str, Any]], variant: str, shots: int, top: int = 1, steps: int | None = None
               ) -> np.ndarray:
    """(seeds, queries) 0/1: whether each test sketch's photo is in the top ``top`` after ``variant`` adapted from
    ``shots`` pairs, from the rows of a study record (``results/run_adaptive_study.py``; each row holds the ranks of
    one seed and one held-out category or drawer), the categories side by side in sorted order: the paired samples
    of :func:`sbir_core.compare.paired_bootstrap`. ``steps`` picks the rows adapted with that many inner steps (rows
    that do not say, made before the steps sweep, are taken as the main rows)."""
    chosen = [r for r in rows if r.get("variant") == variant and r.get("shots") == shots and "ranks" in r
              and (steps is None or r.get("steps", steps) == steps)]
    if not chosen:
        raise KeyError(f"the study has no rows of {variant!r} with {shots} shots")
    seeds, held = sorted({r["seed"] for r in chosen}), sorted({r["category"] for r in chosen})
    cell = {(r["seed"], r["category"]): r["ranks"] for r in chosen}
    if len(cell) != len(chosen) or len(cell) != len(seeds) * len(held):
        raise ValueError(f"the study's rows of {variant!r} with {shots} shots do not form one per seed and category")
    return np.array([[rank <= top for c in held for rank in cell[s, c]] for s in seeds], dtype=float)


__all__ = ["ADAPT", "LEVELS", "METHODS", "MetaConfig", "MetaLearner", "MetaRun", "Pool", "Support", "TaskBatch",
           "adapt", "adapt_all", "adapt_head", "adaptation_result", "adaptation_results", "build_meta_run",
           "concat_splits", "draw_support", "draw_triplets", "held_out_splits", "keep_sketches", "load_meta_run",
           "meta_preset", "meta_train", "outer_loss", "override_meta", "read_embedding_file", "retrieval",
           "sample_tasks", "save_meta_run", "soft_triplet", "study_hits", "supervised_split", "support_margin",
           "task_pools", "test_distances", "usable_pools", "validate_meta_config", "vocabulary_embeddings"]
