"""Deep Compression of an MLP: prune → (retrain) → share → (fine-tune centroids).

Two paths:

* **with training data** (``x_train``, ``y_train``): iterative pruning in ``prune_steps``
  steps towards the target sparsity, each followed by masked retraining; k-means weight
  sharing; trained quantization (centroid fine-tuning). Han et al.'s recipe.
* **post-training** (calibration inputs only, no labels): pruning scored by
  ``|w| · rms(input)`` over the calibration inputs; the surviving weights of each row are
  refitted by least squares so the layer reproduces the float layer's pre-activations on
  the calibration inputs (fed through the already compressed layers before it); after
  sharing, each bias absorbs the mean output error. Without calibration inputs: magnitude
  pruning and plain sharing.

The result keeps the original, pruned and shared weights (for the report's plots) and
the per-layer storage table.
"""

from dataclasses import dataclass, field

import numpy as np

from .model import Mlp
from .prune import apply_masks, prune_activation_aware, prune_global, prune_quality, prune_sparsity
from .share import MAX_BITS, MIN_BITS, SharedLayer, share_weights
from .storage import LayerStorage, layer_storage
from .train import Distill, finetune_centroids, train

__all__ = ["CompressSpec", "Compressed", "compress", "parse_sparsity", "parse_bits"]


def parse_bits(text: str | int | dict, names: list[str], max_bits: int = MAX_BITS) -> dict:
    """``4`` (every layer) or ``fc1=4,fc2=3,fc3=5`` (a bare number sets the layers not
    named) → ``{layer: bits}``; each in ``MIN_BITS .. max_bits``. One-line ``ValueError``."""
    if isinstance(text, dict):
        out = dict(text)
    elif isinstance(text, int | np.integer) and not isinstance(text, bool):
        out = {n: int(text) for n in names}
    else:
        out, default = {}, None
        for part in str(text).split(","):
            part = part.strip()
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
            elif part:
                default = part
        if default is not None:
            out = {n: out.get(n, default) for n in names}
        try:
            out = {k: int(v) for k, v in out.items()}
        except ValueError:
            raise ValueError(f"--bits {text!r}: use an integer or layer=bits pairs, e.g. "
                             f"fc1=4,fc2=3") from None
    unknown = sorted(set(out) - set(names))
    if unknown:
        raise ValueError(f"--bits names unknown layers {', '.join(unknown)} "
                         f"(layers: {', '.join(names)})")
    missing = [n for n in names if n not in out]
    if missing:
        raise ValueError(f"--bits gives no width for {', '.join(missing)}: name every layer "
                         f"or add a bare number for the rest (e.g. 4,fc1=3)")
    for k, v in out.items():
        if isinstance(v, bool) or not MIN_BITS <= v <= max_bits:
            raise ValueError(f"--bits for {k} is {v}: use {MIN_BITS} to {max_bits}")
    return {n: int(out[n]) for n in names}


def parse_sparsity(text: str | float | dict | None, names: list[str]) -> dict | None:
    """``0.9`` (every layer) or ``fc1=0.92,fc2=0.92,fc3=0.75`` → ``{layer: sparsity}``."""
    if text is None:
        return None
    if isinstance(text, dict):
        out = dict(text)
    elif isinstance(text, float | int):
        out = {n: float(text) for n in names}
    else:
        out = {}
        default = None
        for part in str(text).split(","):
            part = part.strip()
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v
            elif part:
                default = part
        if default is not None:
            out = {n: out.get(n, default) for n in names}
        try:
            out = {k: float(v) for k, v in out.items()}
        except ValueError:
            raise ValueError(f"--sparsity {text!r}: use a number in [0, 1) or "
                             f"layer=value pairs, e.g. fc1=0.9,fc2=0.9") from None
    unknown = sorted(set(out) - set(names))
    if unknown:
        raise ValueError(f"--sparsity names unknown layers {', '.join(unknown)} "
                         f"(layers: {', '.join(names)})")
    for k, v in out.items():
        if not 0.0 <= v < 1.0:
            raise ValueError(f"--sparsity for {k} is {v}: use a value in [0, 1)")
    return {n: out.get(n, 0.0) for n in names}


@dataclass
class CompressSpec:
    """What to do. ``sparsity``: float or ``{layer: sparsity}``; ``quality``: Han's
    threshold factor (exclusive with ``sparsity``); ``reserve_zero``: codebook entry 0 is
    0.0 (EIE). ``index_bits``: relative-index bits of the paper's storage accounting.
    ``score``: ``magnitude`` (|w|) or ``activation`` (|w| · rms of the layer's input over
    the training inputs) for pruning with retraining. ``bits``: one width for every layer
    or ``{layer: bits}`` / ``"fc1=4,fc2=3"``. ``distill``: retraining and centroid
    fine-tuning also follow the float model's outputs softened at ``temperature``, mixed
    with the labels at ``distill_weight`` (Hinton et al.)."""

    bits: int | dict | str = 4
    sparsity: float | dict | None = None
    quality: float | None = None
    global_prune: bool = False
    reserve_zero: bool = True
    init: str = "linear"
    index_bits: int = 5
    score: str = "magnitude"
    prune_steps: int = 4
    retrain_epochs: int = 30
    retrain_lr: float = 5e-4
    finetune_epochs: int = 20
    finetune_lr: float = 1e-4
    seed: int = 0
    distill: bool = False
    temperature: float = 4.0
    distill_weight: float = 0.5

    def layer_bits(self, names: list[str]) -> dict:
        """``{layer: bits}`` for the layers ``names``."""
        return parse_bits(self.bits, names)

    def __post_init__(self):
        if self.sparsity is not None and self.quality is not None:
            raise ValueError("give either --sparsity or --quality, not both")
        if self.score not in ("magnitude", "activation"):
            raise ValueError(f"pruning score {self.score!r}: use magnitude or activation")
        if self.prune_steps < 1:
            raise ValueError(f"prune_steps must be >= 1, got {self.prune_steps}")


@dataclass
class Compressed:
    """Members: ``original`` / ``pruned`` / ``final`` models (float), ``shared`` layers,
    ``storage`` rows, ``log`` (stage → figures)."""

    original: Mlp
    pruned: Mlp
    final: Mlp
    shared: list[SharedLayer]
    storage: list[LayerStorage]
    log: dict = field(default_factory=dict)


def _masks(model: Mlp, spec: CompressSpec, fraction: float, calib_inputs=None):
    """Masks for every layer at ``fraction`` of the target sparsity; ``calib_inputs`` (the
    layers' inputs) switch per-layer pruning to activation-aware scores."""
    names = [layer.name for layer in model.layers]
    if spec.quality is not None:
        return [prune_quality(layer.weight, spec.quality * fraction) for layer in model.layers]
    targets = parse_sparsity(spec.sparsity if spec.sparsity is not None else 0.0, names)
    if spec.global_prune:
        sizes = [layer.weight.size for layer in model.layers]
        overall = sum(targets[n] * size for n, size in zip(names, sizes, strict=True))
        overall /= sum(layer.weight.size for layer in model.layers)
        return prune_global([layer.weight for layer in model.layers], overall * fraction)
    if calib_inputs is not None:
        return [prune_activation_aware(layer.weight, x, targets[layer.name] * fraction)
                for layer, x in zip(model.layers, calib_inputs, strict=False)]
    return [prune_sparsity(layer.weight, targets[layer.name] * fraction)
            for layer in model.layers]


def _layer_mask(model: Mlp, i: int, spec: CompressSpec, x_in) -> np.ndarray:
    """Post-training mask of layer ``i`` given its actual (compressed-path) inputs."""
    if spec.quality is not None or spec.global_prune:
        return _masks(model, spec, 1.0)[i]
    names = [layer.name for layer in model.layers]
    target = parse_sparsity(spec.sparsity, names)[names[i]]
    return prune_activation_aware(model.layers[i].weight, x_in, target)


def _schedule(steps: int) -> list[float]:
    """Fractions of the target sparsity reached after each pruning step."""
    if steps <= 4:
        return [0.5, 0.75, 0.9, 1.0][-steps:]
    return [step / steps for step in range(1, steps + 1)]


def _refit(weight, bias, mask, x_in, target, ridge=1e-3):
    """Least-squares refit of each row's kept weights: ``x_in @ w + b ≈ target``."""
    w = np.zeros_like(weight)
    b = bias.astype(np.float64).copy()
    x = np.asarray(x_in, np.float64)
    xm = x.mean(axis=0)
    xc = x - xm
    t = np.asarray(target, np.float64)
    gram = xc.T @ xc
    rhs = xc.T @ (t - t.mean(axis=0))
    scale = ridge * (np.trace(gram) / max(gram.shape[0], 1) + 1e-12)
    for i in range(weight.shape[0]):
        keep = np.flatnonzero(mask[i])
        if keep.size == 0:
            b[i] = t[:, i].mean()
            continue
        g = gram[np.ix_(keep, keep)] + scale * np.eye(keep.size)
        sol = np.linalg.solve(g, rhs[keep, i])
        w[i, keep] = sol
        b[i] = t[:, i].mean() - xm[keep] @ sol
    return w.astype(np.float32), b.astype(np.float32)


def _share_all(model: Mlp, spec: CompressSpec) -> list[SharedLayer]:
    bits = spec.layer_bits([layer.name for layer in model.layers])
    return [share_weights(layer.weight, layer.mask, bits[layer.name], init=spec.init,
                          reserve_zero=spec.reserve_zero, seed=spec.seed)
            for layer in model.layers]


def _bits_text(model: Mlp, spec: CompressSpec) -> str:
    bits = spec.layer_bits([layer.name for layer in model.layers])
    if len(set(bits.values())) == 1:
        return f"{next(iter(bits.values()))} bits"
    return "bits " + ",".join(f"{k}={v}" for k, v in bits.items())


def compress(model: Mlp, spec: CompressSpec, x_train=None, y_train=None, calibration=None,
             progress=None, pruned: Mlp | None = None) -> Compressed:
    """Compress ``model`` (not modified); see the module docstring for the paths.

    ``pruned``: with training data, an already pruned and retrained copy of ``model``
    (masks on its layers), e.g. from an earlier call; pruning is skipped and sharing
    starts from it."""
    say = progress or (lambda msg: None)
    spec.layer_bits([layer.name for layer in model.layers])  # a bad width fails first
    original = model.copy()
    work = model.copy()
    log = {}
    pruning = spec.sparsity is not None or spec.quality is not None
    if x_train is not None:
        if y_train is None:
            raise ValueError("--train needs --labels")
        x_train = np.asarray(x_train, np.float32)
        y_train = np.asarray(y_train, np.int64).reshape(-1)
        _check_inputs(x_train, model, "training inputs")
        if len(y_train) != len(x_train):
            raise ValueError(f"{len(x_train)} training inputs but {len(y_train)} labels")
        classes = model.sizes[-1]
        if y_train.min() < 0 or y_train.max() >= classes:
            raise ValueError(f"labels must be class numbers 0..{classes - 1}")
        log["float_train_accuracy"] = work.accuracy(x_train, y_train)
        distill = None
        if spec.distill:
            distill = Distill(original.forward(x_train), spec.temperature, spec.distill_weight)
            say(f"distillation: targets mix the labels and the float model's outputs at "
                f"T={spec.temperature:g}, weight {spec.distill_weight:g}")
        steps = spec.prune_steps if pruning and pruned is None else 0
        if pruned is not None:
            if pruned.sizes != model.sizes:
                raise ValueError(f"pruned model {pruned.sizes} is not the model {model.sizes}")
            work = pruned.copy()
        for step in range(1, steps + 1):
            fraction = _schedule(steps)[step - 1]
            inputs = work.activations(x_train)[:-1] if spec.score == "activation" else None
            apply_masks(work, _masks(work, spec, fraction, inputs))
            kept = sum(int(layer.mask.sum()) for layer in work.layers)
            say(f"prune step {step}/{steps}: {kept} weights kept; retraining "
                f"{spec.retrain_epochs} epochs")
            train(work, x_train, y_train, epochs=spec.retrain_epochs, lr=spec.retrain_lr,
                  seed=spec.seed + step, distill=distill)
        log["pruned_train_accuracy"] = work.accuracy(x_train, y_train)
        pruned = work.copy()
        say(f"weight sharing: {_bits_text(work, spec)}, k-means ({spec.init} init) per layer")
        shared = _share_all(work, spec)
        for layer, s in zip(work.layers, shared, strict=False):
            layer.weight = s.weight()
        log["shared_train_accuracy"] = work.accuracy(x_train, y_train)
        if spec.finetune_epochs:
            say(f"trained quantization: fine-tuning centroids {spec.finetune_epochs} epochs")
            finetune_centroids(work, shared, x_train, y_train, epochs=spec.finetune_epochs,
                               lr=spec.finetune_lr, seed=spec.seed, distill=distill)
        log["final_train_accuracy"] = work.accuracy(x_train, y_train)
    elif pruned is not None or spec.distill:
        raise ValueError("a pruned start and --distill need --train and --labels")
    elif calibration is not None:
        calibration = np.asarray(calibration, np.float32)
        _check_inputs(calibration, model, "calibration inputs")
        float_acts = original.activations(calibration)
        x_in = calibration
        for i, layer in enumerate(work.layers):
            if pruning:
                say(f"{layer.name}: calibration-guided pruning and least-squares refit")
                mask = _layer_mask(original, i, spec, x_in)
                target = float_acts[i] @ original.layers[i].weight.T + original.layers[i].bias
                if len(x_in) > layer.shape[1]:
                    layer.weight, layer.bias = _refit(layer.weight, layer.bias, mask, x_in,
                                                      target)
                layer.mask = mask
                layer.weight = np.where(mask, layer.weight, np.float32(0))
            h = x_in @ layer.weight.T + layer.bias
            x_in = np.maximum(h, 0) if i < len(work.layers) - 1 else h
        pruned = work.copy()
        say(f"weight sharing: {_bits_text(work, spec)}, k-means ({spec.init} init) per layer")
        shared = _share_all(work, spec)
        x_in = calibration
        for i, (layer, s) in enumerate(zip(work.layers, shared, strict=False)):
            layer.weight = s.weight()
            h = x_in @ layer.weight.T + layer.bias
            target = float_acts[i] @ original.layers[i].weight.T + original.layers[i].bias
            layer.bias = (layer.bias + (target - h).mean(axis=0)).astype(np.float32)
            h = x_in @ layer.weight.T + layer.bias
            x_in = np.maximum(h, 0) if i < len(work.layers) - 1 else h
    else:
        if pruning:
            say("magnitude pruning (no data given)")
            apply_masks(work, _masks(work, spec, 1.0))
        pruned = work.copy()
        say(f"weight sharing: {_bits_text(work, spec)}, k-means ({spec.init} init) per layer")
        shared = _share_all(work, spec)
        for layer, s in zip(work.layers, shared, strict=False):
            layer.weight = s.weight()
    storage = [layer_storage(layer.name, s.mask, s.index, s.bits, spec.index_bits)
               for layer, s in zip(work.layers, shared, strict=False)]
    return Compressed(original, pruned, work, shared, storage, log)


def _check_inputs(x, model, what):
    if x.ndim != 2 or x.shape[1] != model.sizes[0]:
        raise ValueError(f"{what} must have shape (N, {model.sizes[0]}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain NaN or Inf")
