"""Molecular property models registered in :data:`medlearn.registry.MODELS`.

Two families share one learner (:class:`~medlearn.molecules._learner.MoleculeLearner`):

- **graph networks in torch** (``dmpnn``, ``gin``, ``gine``, ``attentivefp``): an encoder turns
  a :class:`~medlearn.molecules._featurize.GraphBatch` into one vector per molecule, optional
  RDKit 2D descriptors (standardised with statistics of the training molecules) are
  concatenated after the readout, and a feed-forward head gives one output per task.
  Target and descriptor scalers are buffers of the network (:class:`MoleculeNet`), so saved
  weights predict in target units with no side files.
- **fingerprint baselines** (``fp_random_forest``, ``fp_gradient_boosting``): scikit-learn
  random forests / histogram gradient boosting on Morgan count or bit fingerprints
  (optionally plus descriptors); a multi-task run fits one model per target on the rows that
  have that label.

Each torch factory returns an architecture dict that :func:`build_network` turns into a
:class:`MoleculeNet`; each fingerprint factory returns a spec dict that
:func:`make_estimator` turns into one unfitted estimator per target.

The D-MPNN (Yang et al. 2019, "Analyzing learned molecular representations for property
prediction", as in Chemprop) keeps a hidden state per *directed* bond ``e = (u → v)``::

    h⁰_e   = W_i [x_u ‖ b_e]                       (input,  ReLU(h⁰) is the first state)
    m_e    = Σ_{e' = (w → u)} h_e'  −  h_rev(e)      (messages into u, minus the reverse bond)
    h_e    = ReLU(h⁰_e + W_h m_e)                   (depth − 1 times)
    a_v    = ReLU(W_o [x_v ‖ Σ_{e = (u → v)} h_e])  (atom states)
    z      = readout_v(a_v)                         (mean / sum / sum ÷ 100 per molecule)

The reverse of edge ``e`` is ``e ^ 1`` (see :mod:`medlearn.molecules._featurize`). The
messages are computed as ``m_e = Σ_{(e, e') ∈ pairs} h_e'`` over the batch's precomputed
message pairs (:meth:`~medlearn.molecules._featurize.GraphBatch.message_pairs`: the edges into
``u`` other than the reverse edge), one gather and one scatter-add (``Tensor.index_add_``)
whose backward is the same two operations transposed (:class:`PairSum`); atom sums are
scatter-sums too. No compiled extension is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from medlearn.errors import ConfigError
from medlearn.molecules._featurize import ATOM_DIM, BOND_DIM, GraphBatch, message_pairs
from medlearn.registry import MODELS
from medlearn.training.dropout import FastDropout

__all__ = [
    "AttentiveFPEncoder",
    "DMPNNEncoder",
    "GINEncoder",
    "MoleculeNet",
    "PairSum",
    "build_network",
    "directed_messages",
    "make_estimator",
    "pair_messages",
    "readout",
    "reverse_edges",
    "scatter_sum",
]

_TASKS = ("binary", "multilabel", "regression")
_META = {
    "domain": "molecules",
    "learner": "molecules",
    "reader": "molecules",
    "handler": "molecules",
    "tasks": _TASKS,
}
#: Parameters the learner passes itself; refused in ``model.params``.
RESERVED: tuple[str, ...] = ()

Aggregation = Literal["mean", "sum", "norm"]
_AGGREGATIONS = ("mean", "sum", "norm")
#: fingerprint baselines a graph network can be blended with (``model.params.blend``: one
#: name, or a list of them blended together)
BLENDS = ("none", "fp_gradient_boosting", "fp_random_forest", "fp_kernel_ridge")
#: ``norm`` aggregation: the atom sum divided by this constant (Chemprop's default).
NORM_CONSTANT = 100.0


def _register(
    name: str,
    *,
    kind: str,
    tiny: dict[str, Any],
    description: str,
    tasks: tuple[str, ...] = _TASKS,
):
    meta = {**_META, "tasks": tasks}
    return MODELS.register(name, kind=kind, tiny=tiny, description=description, **meta)


# --- checks ------------------------------------------------------------------------------------


def _positive_int(model: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"The '{name}' parameter of {model} must be a positive integer. Got {value!r}.",
            hint=f"Set model.params.{name} to e.g. 3.",
        )
    return int(value)


def _dropout(model: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ConfigError(
            f"The 'dropout' parameter of {model} must be a number in [0, 1). Got {value!r}.",
            hint="Set model.params.dropout to e.g. 0.1 (0 disables dropout).",
        )
    return float(value)


def _choice(model: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(
            f"The '{name}' parameter of {model} must be one of {', '.join(allowed)}. "
            f"Got {value!r}.",
            hint=f"Set model.params.{name} to one of {', '.join(allowed)}.",
        )
    return str(value)


def _graph_arch(
    model: str,
    encoder: str,
    *,
    hidden: int,
    depth: int,
    ffn_hidden: int,
    ffn_layers: int,
    dropout: float,
    aggregation: str,
    batch_norm: bool,
    descriptors: bool,
    blend: str | list[str] = "none",
    blend_params: dict[str, Any] | None = None,
    blend_refit: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """The checked architecture dict shared by every graph network."""
    names = _blend_names(model, blend)
    specs = _blend_specs(model, names, blend_params, bool(descriptors))
    if not isinstance(blend_refit, bool):
        raise ConfigError(
            f"The 'blend_refit' parameter of {model} must be true or false. Got {blend_refit!r}.",
            hint="Set model.params.blend_refit: true to refit the blend's baselines on the "
            "training and validation molecules once their weights are chosen.",
        )
    if blend_refit and not specs:
        raise ConfigError(
            f"The 'blend_refit' parameter of {model} is true but 'blend' is none: there is no "
            "baseline to refit.",
            hint="Set model.params.blend (e.g. [fp_gradient_boosting, fp_kernel_ridge]), or "
            "drop blend_refit.",
        )
    if not isinstance(ffn_layers, int) or isinstance(ffn_layers, bool) or ffn_layers < 0:
        raise ConfigError(
            f"The 'ffn_layers' parameter of {model} must be an integer >= 0 (hidden layers "
            f"of the head). Got {ffn_layers!r}.",
            hint="Set model.params.ffn_layers to e.g. 1.",
        )
    return {
        "kind": "torch",
        "encoder": encoder,
        "hidden": _positive_int(model, "hidden", hidden),
        "depth": _positive_int(model, "depth", depth),
        "ffn_hidden": _positive_int(model, "ffn_hidden", ffn_hidden),
        "ffn_layers": int(ffn_layers),
        "dropout": _dropout(model, dropout),
        "aggregation": _choice(model, "aggregation", aggregation, _AGGREGATIONS),
        "batch_norm": bool(batch_norm),
        "descriptors": bool(descriptors),
        "blend": blend if isinstance(blend, str) else list(names),
        # one baseline: its spec (as bundles before list blends have it); else None
        "blend_spec": specs[0] if len(specs) == 1 else None,
        # every baseline's spec, in the order of ``blend``
        "blend_specs": specs,
        # only when set, so that architectures (and checkpoint signatures) of earlier runs
        # read the same
        **({"blend_refit": True} if blend_refit else {}),
        **extra,
    }


#: what a blend's baseline changes from the baseline's own defaults: it is fitted on top of
#: the network(s), so trees are kept cheap (ESOL: 512 bits fit 3x faster than 2048, blend as
#: good); the kernel ridge keeps its 2,048 bits (its kernel is on the whole count vector)
_BLEND_DEFAULTS: dict[str, dict[str, Any]] = {
    "fp_gradient_boosting": {"n_bits": 512},
    "fp_random_forest": {"n_bits": 512},
    "fp_kernel_ridge": {},
}


def _blend_names(model: str, blend: Any) -> list[str]:
    """``model.params.blend`` as a list of baseline names (``[]`` for none)."""
    choices = [b for b in BLENDS if b != "none"]
    if isinstance(blend, str):
        return [] if _choice(model, "blend", blend, BLENDS) == "none" else [blend]
    if not isinstance(blend, (list, tuple)) or not blend:
        raise ConfigError(
            f"The 'blend' parameter of {model} must be a baseline name or a non-empty list of "
            f"them. Got {blend!r}.",
            hint=f"e.g. blend: fp_gradient_boosting, or blend: [{choices[0]}, {choices[-1]}]. "
            f"Baselines: {', '.join(choices)}.",
        )
    names = [_choice(model, "blend", b, tuple(choices)) for b in blend]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"The 'blend' list of {model} names a baseline twice: {names!r}.",
            hint="List each baseline once.",
        )
    return names


def _blend_specs(
    model: str, names: list[str], params: Any, descriptors: bool
) -> list[dict[str, Any]]:
    """The checked fingerprint specs of a graph network's blend baselines.

    ``blend_params`` holds one baseline's parameters when ``blend`` names one baseline, and
    a mapping of baseline name → its parameters when ``blend`` is a list.
    """
    if not names:
        if params:
            raise ConfigError(
                f"The 'blend_params' parameter of {model} is set but 'blend' is none.",
                hint="Set model.params.blend to one of "
                f"{', '.join(b for b in BLENDS if b != 'none')}, or drop blend_params.",
            )
        return []
    if params is not None and not isinstance(params, dict):
        raise ConfigError(
            f"The 'blend_params' parameter of {model} must be a mapping of parameters. "
            f"Got {params!r}.",
            hint="e.g. blend_params: {n_bits: 1024}; with a list of baselines, "
            "blend_params: {fp_gradient_boosting: {n_bits: 1024}}",
        )
    per: dict[str, dict[str, Any]]
    if len(names) == 1 and not (params and set(params) <= set(BLENDS) - {"none"}):
        per = {names[0]: dict(params or {})}
    else:
        params = params or {}
        stray = sorted(set(params) - set(names))
        bad = [k for k, v in params.items() if not isinstance(v, dict)]
        if stray or bad:
            raise ConfigError(
                f"With a list of blend baselines, 'blend_params' of {model} maps each "
                f"baseline of the list to its parameters. "
                + (f"Not in the list: {', '.join(map(str, stray))}. " if stray else "")
                + (f"Not a mapping: {', '.join(map(str, bad))}." if bad else ""),
                hint="e.g. blend: [fp_gradient_boosting, fp_kernel_ridge] with "
                "blend_params: {fp_gradient_boosting: {n_bits: 1024}}",
            )
        per = {n: dict(params.get(n) or {}) for n in names}
    return [_blend_spec(model, n, per[n], descriptors) for n in names]


def _blend_spec(
    model: str, blend: str, params: dict[str, Any], descriptors: bool
) -> dict[str, Any]:
    """The checked fingerprint spec of one blend baseline."""
    factory = {
        "fp_gradient_boosting": fp_gradient_boosting,
        "fp_random_forest": fp_random_forest,
        "fp_kernel_ridge": fp_kernel_ridge,
    }[blend]
    kwargs = {**_BLEND_DEFAULTS[blend], "descriptors": descriptors, **params}
    try:
        spec = dict(factory(**kwargs))
    except TypeError as exc:
        raise ConfigError(
            f"The 'blend_params' of {model} are not parameters of {blend}: {exc}.",
            hint=f"`medlearn models show {blend}` lists its parameters.",
        ) from None
    if spec["descriptors"] and not descriptors:
        raise ConfigError(
            f"The blend baseline {blend} of {model} asks for descriptors but the network has "
            "descriptors: false; the descriptor scaler is fitted only with the network's.",
            hint="Set model.params.descriptors: true, or drop descriptors from blend_params.",
        )
    spec["name"] = blend
    return spec


# --- scatter helpers -----------------------------------------------------------------------------


def scatter_sum(src: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """Rows of ``src`` summed into ``size`` buckets: ``out[index[i]] += src[i]``.

    Args:
        src: ``(N, H)`` values.
        index: ``(N,)`` bucket of each row, in ``[0, size)``.
        size: number of buckets.

    Returns:
        ``(size, H)``; empty buckets are zero.
    """
    out = src.new_zeros((size, *src.shape[1:]))
    return out.index_add_(0, index, src)


class PairSum(torch.autograd.Function):
    """``out[rows[i]] += src[cols[i]]`` for every pair ``i`` (a sparse 0/1 matrix times
    ``src``), with the transposed operation as its backward.

    Autograd's own backward of an indexing gather is a slow accumulating ``index_put``;
    this one is one ``index_select`` and one ``index_add_`` each way.
    """

    @staticmethod
    def forward(
        ctx: Any, src: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, n_out: int
    ) -> torch.Tensor:
        ctx.save_for_backward(rows, cols)
        ctx.n_in = src.shape[0]
        out = src.new_zeros((n_out, *src.shape[1:]))
        return out.index_add_(0, rows, src.index_select(0, cols))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        rows, cols = ctx.saved_tensors
        out = grad.new_zeros((ctx.n_in, *grad.shape[1:]))
        return out.index_add_(0, cols, grad.index_select(0, rows)), None, None, None


def pair_messages(h: torch.Tensor, pairs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """D-MPNN messages ``(E, H)`` from edge states ``h`` ``(E, H)`` and the batch's message
    pairs (:meth:`~medlearn.molecules._featurize.GraphBatch.message_pairs`)."""
    rows, cols = pairs
    return PairSum.apply(h, rows, cols, h.shape[0])


def directed_messages(h: torch.Tensor, edge_index: torch.Tensor, n_atoms: int) -> torch.Tensor:
    """D-MPNN messages: for every directed edge ``u → v``, the sum of the states of the edges
    into ``u`` except the reverse edge ``v → u``.

    Args:
        h: ``(E, H)`` states of the directed edges; edge ``e``'s reverse is ``e ^ 1``.
        edge_index: ``(2, E)`` source and destination atom of each edge.
        n_atoms: atoms in the batch.

    Returns:
        ``(E, H)`` messages ``m_e = Σ_{e' into src(e)} h_e' − h_{rev(e)}``.
    """
    return pair_messages(h, _pairs_of(edge_index, n_atoms))


def _pairs_of(edge_index: torch.Tensor, n_atoms: int) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~medlearn.molecules._featurize.message_pairs` of ``edge_index`` as tensors on
    its device."""
    rows, cols = message_pairs(edge_index.detach().cpu().numpy(), n_atoms)
    return torch.from_numpy(rows).to(edge_index.device), torch.from_numpy(cols).to(
        edge_index.device
    )


def reverse_edges(h: torch.Tensor) -> torch.Tensor:
    """``h[e ^ 1]`` for every edge ``e``: swaps the rows of each bond's two directed edges.

    Written as a reshape and flip rather than a gather, so its gradient is a flip too
    (no scatter). ``h`` has an even number of rows ``(E, ...)``.
    """
    return h.unflatten(0, (-1, 2)).flip(1).flatten(0, 1)


def readout(
    h: torch.Tensor, batch: torch.Tensor, num_graphs: int, how: Aggregation
) -> torch.Tensor:
    """Per-molecule pooling of atom states ``(N_atoms, H)`` → ``(num_graphs, H)``.

    ``mean`` averages, ``sum`` adds, ``norm`` adds and divides by :data:`NORM_CONSTANT`.
    """
    total = scatter_sum(h, batch, num_graphs)
    if how == "sum":
        return total
    if how == "norm":
        return total / NORM_CONSTANT
    counts = torch.bincount(batch, minlength=num_graphs).clamp_min(1).to(h.dtype)
    return total / counts[:, None]


# --- encoders ------------------------------------------------------------------------------------


class DMPNNEncoder(nn.Module):
    """Directed message passing (Chemprop's bond-centred MPNN) with a per-molecule readout.

    Args:
        atom_dim: atom features.
        bond_dim: bond features.
        hidden: hidden size of edge and atom states.
        depth: message-passing depth as in Chemprop: the input state counts as step 1, so
            ``depth`` = 3 runs two message updates.
        dropout: dropout on edge and atom states.
        aggregation: ``mean``, ``sum`` or ``norm`` readout.
    """

    def __init__(
        self,
        atom_dim: int = ATOM_DIM,
        bond_dim: int = BOND_DIM,
        *,
        hidden: int = 300,
        depth: int = 3,
        dropout: float = 0.0,
        aggregation: Aggregation = "norm",
    ) -> None:
        super().__init__()
        self.depth = depth
        self.aggregation = aggregation
        self.out_dim = hidden
        self.W_i = nn.Linear(atom_dim + bond_dim, hidden, bias=False)
        self.W_h = nn.Linear(hidden, hidden, bias=False)
        self.W_o = nn.Linear(atom_dim + hidden, hidden)
        self.drop = FastDropout(dropout)

    def atom_states(
        self,
        x: torch.Tensor,
        edge_index: torch.Tensor,
        edge_attr: torch.Tensor,
        pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Atom hidden states ``(N_atoms, hidden)``.

        Args:
            x: ``(N_atoms, atom_dim)`` atom features.
            edge_index: ``(2, E)`` directed edges (reverse of ``e`` is ``e ^ 1``).
            edge_attr: ``(E, bond_dim)`` bond features.
            pairs: the message pairs of ``edge_index``
                (:meth:`~medlearn.molecules._featurize.GraphBatch.message_pairs`); computed
                here when ``None``.
        """
        n_atoms = x.shape[0]
        if pairs is None:
            pairs = _pairs_of(edge_index, n_atoms)
        src, dst = edge_index[0], edge_index[1]
        # W_i [x_src ‖ b] = (x W_ix)[src] + b W_ib: the atom part is computed once per atom
        # rather than once per edge (the same function, about half the work); the sum is
        # one addmm. W_o [x ‖ m] = x W_ox + m W_om likewise, so that no gradient is computed
        # for the (constant) atom features.
        w_ix, w_ib = self.W_i.weight.split([x.shape[1], edge_attr.shape[1]], dim=1)
        h_in = torch.addmm(F.linear(x, w_ix).index_select(0, src), edge_attr, w_ib.t())  # (E, H)
        h = torch.relu(h_in)
        for _ in range(self.depth - 1):
            m = pair_messages(h, pairs)
            h = self.drop(torch.relu(torch.addmm(h_in, m, self.W_h.weight.t())))
        m_atom = scatter_sum(h, dst, n_atoms)  # atoms without bonds get zeros
        w_ox, w_om = self.W_o.weight.split([x.shape[1], h.shape[1]], dim=1)
        a = torch.addmm(F.linear(x, w_ox, self.W_o.bias), m_atom, w_om.t())
        return self.drop(torch.relu(a))

    def forward(self, batch: GraphBatch, x: torch.Tensor | None = None) -> torch.Tensor:
        """Molecule vectors ``(B, hidden)``; ``x`` replaces the batch's atom features."""
        x = batch.x if x is None else x
        a = self.atom_states(x, batch.edge_index, batch.edge_attr, batch.message_pairs())
        return readout(a, batch.batch, batch.num_graphs, self.aggregation)  # type: ignore[arg-type]


class GINEncoder(nn.Module):
    """Graph isomorphism network (Xu et al. 2019) layers from PyTorch Geometric.

    ``edge_features=True`` uses ``GINEConv`` (Hu et al. 2020), which adds a projection of
    the bond features to each neighbour's state before the sum.

    Args:
        atom_dim, bond_dim: feature sizes.
        hidden: state size.
        depth: GIN layers.
        dropout: dropout after each layer.
        aggregation: per-molecule readout.
        edge_features: GINE (bond features) instead of GIN.
    """

    def __init__(
        self,
        atom_dim: int = ATOM_DIM,
        bond_dim: int = BOND_DIM,
        *,
        hidden: int = 300,
        depth: int = 3,
        dropout: float = 0.0,
        aggregation: Aggregation = "mean",
        edge_features: bool = False,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GINConv, GINEConv

        self.aggregation = aggregation
        self.edge_features = edge_features
        self.out_dim = hidden
        self.embed = nn.Linear(atom_dim, hidden)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(depth):
            mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
            conv = (
                GINEConv(mlp, train_eps=True, edge_dim=bond_dim)
                if edge_features
                else GINConv(mlp, train_eps=True)
            )
            self.convs.append(conv)
            self.norms.append(nn.BatchNorm1d(hidden))
        self.drop = FastDropout(dropout)

    def forward(self, batch: GraphBatch, x: torch.Tensor | None = None) -> torch.Tensor:
        """Molecule vectors ``(B, hidden)``; ``x`` replaces the batch's atom features."""
        x = batch.x if x is None else x
        h = self.embed(x)
        for conv, norm in zip(self.convs, self.norms, strict=True):
            if self.edge_features:
                z = conv(h, batch.edge_index, batch.edge_attr)
            else:
                z = conv(h, batch.edge_index)
            h = self.drop(torch.relu(norm(z)))
        return readout(h, batch.batch, batch.num_graphs, self.aggregation)  # type: ignore[arg-type]


class AttentiveFPEncoder(nn.Module):
    """AttentiveFP (Xiong et al. 2020) from PyTorch Geometric: graph attention over atoms,
    then a GRU-gated attention readout over the molecule (its own readout).

    Args:
        atom_dim, bond_dim: feature sizes.
        hidden: state size (also the molecule vector's size).
        depth: atom-level attention layers.
        timesteps: molecule-level readout steps.
        dropout: dropout inside the layers.
    """

    def __init__(
        self,
        atom_dim: int = ATOM_DIM,
        bond_dim: int = BOND_DIM,
        *,
        hidden: int = 200,
        depth: int = 2,
        timesteps: int = 2,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from torch_geometric.nn.models import AttentiveFP

        self.out_dim = hidden
        self.net = AttentiveFP(
            in_channels=atom_dim,
            hidden_channels=hidden,
            out_channels=hidden,
            edge_dim=bond_dim,
            num_layers=depth,
            num_timesteps=timesteps,
            dropout=dropout,
        )

    def forward(self, batch: GraphBatch, x: torch.Tensor | None = None) -> torch.Tensor:
        """Molecule vectors ``(B, hidden)``; ``x`` replaces the batch's atom features."""
        x = batch.x if x is None else x
        return self.net(x, batch.edge_index, batch.edge_attr, batch.batch)


# --- the whole network ---------------------------------------------------------------------------


def _ffn(in_dim: int, out_dim: int, hidden: int, layers: int, dropout: float) -> nn.Sequential:
    """Chemprop's predictor: ``layers`` hidden (Linear, ReLU, Dropout) blocks, then Linear."""
    mods: list[nn.Module] = [FastDropout(dropout)]
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.ReLU(), FastDropout(dropout)]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class MoleculeNet(nn.Module):
    """Encoder → (batch norm) → ‖ descriptors → feed-forward head, target scaler inside.

    Buffers (saved with the weights): ``y_mean`` / ``y_std`` ``(T,)`` — the targets are
    standardised with them during training and :meth:`predict` unscales (identity for
    classification tasks). Descriptor features arrive already scaled (finite) in
    ``GraphBatch.extra`` (:class:`~medlearn.molecules._features.DescriptorScaler`, fitted on
    the training molecules and saved as JSON beside the weights).

    Args:
        encoder: a module mapping ``(GraphBatch, x)`` to ``(B, encoder.out_dim)``.
        n_tasks: T outputs.
        n_extra: D per-molecule (scaled) descriptor features (0 for none).
        ffn_hidden, ffn_layers, dropout: the head.
        batch_norm: batch norm on the molecule vector.
    """

    def __init__(
        self,
        encoder: nn.Module,
        n_tasks: int,
        *,
        n_extra: int = 0,
        ffn_hidden: int = 300,
        ffn_layers: int = 1,
        dropout: float = 0.0,
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        enc_dim = int(encoder.out_dim)
        self.n_tasks = n_tasks
        self.n_extra = n_extra
        self.bn = nn.BatchNorm1d(enc_dim) if batch_norm else nn.Identity()
        self.head = _ffn(enc_dim + n_extra, n_tasks, ffn_hidden, ffn_layers, dropout)
        self.register_buffer("y_mean", torch.zeros(n_tasks))
        self.register_buffer("y_std", torch.ones(n_tasks))

    def set_target_scaler(self, mean: Any, std: Any) -> None:
        """Store target means and standard deviations ``(T,)`` (std floored at 1e-8)."""
        self.y_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.y_std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-8))

    def embed(self, batch: GraphBatch, x: torch.Tensor | None = None) -> torch.Tensor:
        """The head's input ``(B, enc_dim + D)``."""
        z = self.bn(self.encoder(batch, x))
        if self.n_extra:
            if batch.extra is None or batch.extra.shape[1] != self.n_extra:
                raise ValueError(
                    f"this network needs {self.n_extra} descriptor features per molecule "
                    "(GraphBatch.extra)"
                )
            z = torch.cat([z, batch.extra], dim=1)
        return z

    def forward(self, batch: GraphBatch, x: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs ``(B, T)`` in the scaled space: logits (classification) or standardised
        targets (regression)."""
        return self.head(self.embed(batch, x))

    def unscale(self, out: torch.Tensor) -> torch.Tensor:
        """Scaled outputs ``(B, T)`` → target units."""
        return out * self.y_std + self.y_mean

    def predict(self, batch: GraphBatch) -> torch.Tensor:
        """Outputs ``(B, T)`` in target units (regression) or logits (classification)."""
        return self.unscale(self(batch))


def build_network(arch: Mapping[str, Any], *, n_tasks: int, n_extra: int = 0) -> MoleculeNet:
    """A :class:`MoleculeNet` from a torch factory's architecture dict.

    Args:
        arch: what ``dmpnn`` / ``gin`` / ``gine`` / ``attentivefp`` return.
        n_tasks: T outputs.
        n_extra: D descriptor features (0 unless ``arch["descriptors"]``).
    """
    kind = arch["encoder"]
    h, depth, drop = int(arch["hidden"]), int(arch["depth"]), float(arch["dropout"])
    if kind == "dmpnn":
        enc: nn.Module = DMPNNEncoder(
            hidden=h, depth=depth, dropout=drop, aggregation=arch["aggregation"]
        )
    elif kind in ("gin", "gine"):
        enc = GINEncoder(
            hidden=h,
            depth=depth,
            dropout=drop,
            aggregation=arch["aggregation"],
            edge_features=kind == "gine",
        )
    elif kind == "attentivefp":
        enc = AttentiveFPEncoder(
            hidden=h, depth=depth, timesteps=int(arch["timesteps"]), dropout=drop
        )
    else:
        raise ConfigError(f"Unknown molecular graph encoder {kind!r}.")
    return MoleculeNet(
        enc,
        n_tasks,
        n_extra=n_extra,
        ffn_hidden=int(arch["ffn_hidden"]),
        ffn_layers=int(arch["ffn_layers"]),
        dropout=drop,
        batch_norm=bool(arch["batch_norm"]),
    )


# --- registered graph networks -------------------------------------------------------------------

_TINY_GRAPH = {"hidden": 16, "depth": 2, "ffn_hidden": 16}


@_register(
    "dmpnn",
    kind="torch",
    tiny=_TINY_GRAPH,
    description="Directed message-passing network on bonds (Chemprop-style D-MPNN), "
    "optional RDKit descriptors after the readout and a blend with fingerprint baselines.",
)
def dmpnn(
    *,
    hidden: int = 300,
    depth: int = 3,
    ffn_hidden: int = 300,
    ffn_layers: int = 1,
    dropout: float = 0.0,
    aggregation: Aggregation = "norm",
    batch_norm: bool = False,
    descriptors: bool = False,
    blend: str | list[str] = "none",
    blend_params: dict[str, Any] | None = None,
    blend_refit: bool = False,
) -> dict[str, Any]:
    """D-MPNN architecture (defaults = Chemprop 2's).

    Args:
        hidden: edge / atom state size.
        depth: message-passing depth (Chemprop's convention: 3 = two message updates).
        ffn_hidden: hidden size of the head.
        ffn_layers: hidden layers of the head (0 = one linear layer).
        dropout: dropout in the encoder and head.
        aggregation: readout over atoms: ``mean``, ``sum`` or ``norm`` (sum / 100).
        batch_norm: batch norm on the molecule vector.
        descriptors: concatenate RDKit 2D descriptors (scaled on training molecules).
        blend: ``none``, a fingerprint baseline (``fp_gradient_boosting``,
            ``fp_random_forest``, or for regression ``fp_kernel_ridge``; on Morgan count
            fingerprints, plus the RDKit descriptors when ``descriptors`` is on) fitted on the
            same training molecules and averaged with the network(s): per target
            ``(1 - w) * network + w * baseline``, ``w`` chosen on the validation split from
            0, 0.1, ..., 1; or a list of baselines, each target's weights chosen together on
            a grid of steps of 0.1 that sums to 1.
        blend_params: parameters of the blend baseline (default: its own defaults, trees with
            512-bit fingerprints, kept cheap as they are fitted on top of the network); with a
            list, a mapping of baseline name to its parameters.
        blend_refit: once the weights are chosen, refit the blend's baselines on the
            training and validation molecules together (the networks keep the validation
            split for early stopping). Validation metrics and the calibration fitted on
            validation use the baselines' outputs from before the refit, so they stay
            held out.
    """
    return _graph_arch(
        "dmpnn",
        "dmpnn",
        hidden=hidden,
        depth=depth,
        ffn_hidden=ffn_hidden,
        ffn_layers=ffn_layers,
        dropout=dropout,
        aggregation=aggregation,
        batch_norm=batch_norm,
        descriptors=descriptors,
        blend=blend,
        blend_params=blend_params,
        blend_refit=blend_refit,
    )


def _gin_factory(name: str, encoder: str) -> Any:
    def factory(
        *,
        hidden: int = 300,
        depth: int = 4,
        ffn_hidden: int = 300,
        ffn_layers: int = 1,
        dropout: float = 0.0,
        aggregation: Aggregation = "mean",
        batch_norm: bool = False,
        descriptors: bool = False,
        blend: str | list[str] = "none",
        blend_params: dict[str, Any] | None = None,
        blend_refit: bool = False,
    ) -> dict[str, Any]:
        return _graph_arch(
            name,
            encoder,
            hidden=hidden,
            depth=depth,
            ffn_hidden=ffn_hidden,
            ffn_layers=ffn_layers,
            dropout=dropout,
            aggregation=aggregation,
            batch_norm=batch_norm,
            descriptors=descriptors,
            blend=blend,
            blend_params=blend_params,
            blend_refit=blend_refit,
        )

    factory.__name__ = name
    factory.__qualname__ = name
    return factory


gin = _register(
    "gin",
    kind="torch",
    tiny=_TINY_GRAPH,
    description="Graph isomorphism network (PyTorch Geometric GINConv) on atoms, mean/sum readout.",
)(_gin_factory("gin", "gin"))
gin.__doc__ = """GIN architecture: ``depth`` GINConv layers (2-layer MLPs, batch norm, ReLU).

    Args: as :func:`dmpnn`; ``depth`` counts GIN layers (default 4), ``aggregation``
    defaults to ``mean``.
    """

gine = _register(
    "gine",
    kind="torch",
    tiny=_TINY_GRAPH,
    description="GIN with bond features (PyTorch Geometric GINEConv), mean/sum readout.",
)(_gin_factory("gine", "gine"))
gine.__doc__ = """GINE architecture: like :func:`gin` with bond features added to messages.

    Args: as :func:`gin`.
    """


@_register(
    "attentivefp",
    kind="torch",
    tiny={"hidden": 16, "depth": 1, "timesteps": 1, "ffn_hidden": 16},
    description="AttentiveFP graph attention network (PyTorch Geometric) with its "
    "attention readout.",
)
def attentivefp(
    *,
    hidden: int = 200,
    depth: int = 2,
    timesteps: int = 2,
    ffn_hidden: int = 200,
    ffn_layers: int = 1,
    dropout: float = 0.0,
    batch_norm: bool = False,
    descriptors: bool = False,
    blend: str | list[str] = "none",
    blend_params: dict[str, Any] | None = None,
    blend_refit: bool = False,
) -> dict[str, Any]:
    """AttentiveFP architecture.

    Args:
        hidden: state size.
        depth: atom-level attention layers.
        timesteps: molecule-level attention readout steps.
        ffn_hidden, ffn_layers, dropout, batch_norm, descriptors, blend, blend_params,
            blend_refit: as :func:`dmpnn`.
    """
    return _graph_arch(
        "attentivefp",
        "attentivefp",
        hidden=hidden,
        depth=depth,
        ffn_hidden=ffn_hidden,
        ffn_layers=ffn_layers,
        dropout=dropout,
        aggregation="mean",
        batch_norm=batch_norm,
        descriptors=descriptors,
        blend=blend,
        blend_params=blend_params,
        blend_refit=blend_refit,
        timesteps=_positive_int("attentivefp", "timesteps", timesteps),
    )


# --- fingerprint baselines -----------------------------------------------------------------------

_FINGERPRINTS = ("count", "bit")


def _fp_spec(
    model: str,
    estimator: str,
    *,
    fingerprint: str,
    radius: int,
    n_bits: int,
    descriptors: bool,
    params: dict[str, Any],
) -> dict[str, Any]:
    return {
        "kind": "sklearn",
        "estimator": estimator,
        "fingerprint": _choice(model, "fingerprint", fingerprint, _FINGERPRINTS),
        "radius": _positive_int(model, "radius", radius),
        "n_bits": _positive_int(model, "n_bits", n_bits),
        "descriptors": bool(descriptors),
        "params": params,
    }


@_register(
    "fp_random_forest",
    kind="sklearn",
    tiny={"n_estimators": 10, "n_bits": 256},
    description="Random forest on Morgan fingerprints (count or bit, optionally plus RDKit "
    "descriptors); one forest per target.",
)
def fp_random_forest(
    *,
    n_estimators: int = 500,
    max_features: str | float | None = "auto",
    min_samples_leaf: int = 1,
    max_depth: int | None = None,
    fingerprint: Literal["count", "bit"] = "count",
    radius: int = 2,
    n_bits: int = 2048,
    descriptors: bool = False,
) -> dict[str, Any]:
    """Random forest spec.

    Args:
        n_estimators: trees per target.
        max_features: features per split; ``"auto"`` = all for regression, ``"sqrt"`` for
            classification (scikit-learn's own defaults).
        min_samples_leaf, max_depth: tree size.
        fingerprint: Morgan ``count`` or ``bit`` vector.
        radius: Morgan radius (2 = ECFP4).
        n_bits: fingerprint length.
        descriptors: append RDKit 2D descriptors.
    """
    return _fp_spec(
        "fp_random_forest",
        "random_forest",
        fingerprint=fingerprint,
        radius=radius,
        n_bits=n_bits,
        descriptors=descriptors,
        params={
            "n_estimators": _positive_int("fp_random_forest", "n_estimators", n_estimators),
            "max_features": max_features,
            "min_samples_leaf": _positive_int(
                "fp_random_forest", "min_samples_leaf", min_samples_leaf
            ),
            "max_depth": max_depth,
        },
    )


@_register(
    "fp_gradient_boosting",
    kind="sklearn",
    tiny={"max_iter": 10, "n_bits": 256},
    description="Histogram gradient boosting on Morgan fingerprints (optionally plus RDKit "
    "descriptors); one model per target.",
)
def fp_gradient_boosting(
    *,
    max_iter: int = 300,
    learning_rate: float = 0.05,
    max_leaf_nodes: int = 31,
    min_samples_leaf: int = 10,
    l2_regularization: float = 0.0,
    fingerprint: Literal["count", "bit"] = "count",
    radius: int = 2,
    n_bits: int = 2048,
    descriptors: bool = False,
) -> dict[str, Any]:
    """Histogram gradient boosting spec (internal early stopping on a 10% share when a
    target has more than 10,000 labelled rows, scikit-learn's ``"auto"``).

    Args:
        max_iter, learning_rate, max_leaf_nodes, min_samples_leaf, l2_regularization:
            scikit-learn's parameters.
        fingerprint, radius, n_bits, descriptors: as :func:`fp_random_forest`.
    """
    return _fp_spec(
        "fp_gradient_boosting",
        "gradient_boosting",
        fingerprint=fingerprint,
        radius=radius,
        n_bits=n_bits,
        descriptors=descriptors,
        params={
            "max_iter": _positive_int("fp_gradient_boosting", "max_iter", max_iter),
            "learning_rate": float(learning_rate),
            "max_leaf_nodes": _positive_int(
                "fp_gradient_boosting", "max_leaf_nodes", max_leaf_nodes
            ),
            "min_samples_leaf": _positive_int(
                "fp_gradient_boosting", "min_samples_leaf", min_samples_leaf
            ),
            "l2_regularization": float(l2_regularization),
        },
    )


#: kernel ridge defaults: the grids its k-fold search on the training molecules tries
_KRR_ALPHAS = (3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
_KRR_GAMMAS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def _grid(model: str, name: str, values: Any) -> list[float]:
    if (
        not isinstance(values, (list, tuple))
        or not values
        or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values
        )
    ):
        raise ConfigError(
            f"The '{name}' parameter of {model} must be a non-empty list of positive numbers. "
            f"Got {values!r}.",
            hint=f"e.g. {name}: [0.01, 0.1, 1.0]",
        )
    return [float(v) for v in values]


@_register(
    "fp_kernel_ridge",
    kind="sklearn",
    tiny={"n_bits": 256, "alphas": [0.1, 1.0], "gammas": [1e-3], "cv_folds": 3, "cv_repeats": 1},
    description="Kernel ridge regression (RBF kernel) on Morgan count fingerprints plus "
    "standardised RDKit descriptors; its regularisation and kernel width chosen by k-fold "
    "cross-validation on the training molecules. Regression only.",
    tasks=("regression",),
)
def fp_kernel_ridge(
    *,
    alphas: list[float] | tuple[float, ...] = _KRR_ALPHAS,
    gammas: list[float] | tuple[float, ...] = _KRR_GAMMAS,
    cv_folds: int = 5,
    cv_repeats: int = 3,
    max_train: int = 10_000,
    fingerprint: Literal["count", "bit"] = "count",
    radius: int = 2,
    n_bits: int = 2048,
    descriptors: bool = True,
) -> dict[str, Any]:
    """Kernel ridge regression spec.

    Targets are standardised on the training molecules, then fitted by
    ``sklearn.kernel_ridge.KernelRidge(kernel="rbf")``; every ``(alpha, gamma)`` pair is
    scored by ``cv_folds``-fold cross-validation (RMSE) on the training molecules and the
    best refitted on all of them. Unlike trees, the model is smooth in the descriptors, so it
    extrapolates along them (FreeSolv: docs/benchmarks.md).

    Args:
        alphas: ridge penalties tried.
        gammas: RBF kernel widths tried (``exp(-gamma * |x - x'|²)``).
        cv_folds: folds of the search.
        cv_repeats: times the k-fold split is drawn anew (another shuffle each), the score
            of a pair being its mean RMSE over every fold of every repeat: on a few hundred
            molecules one split's scores are noisy enough to pick a pair at a grid edge.
        max_train: most labelled training molecules per target; the kernel matrix grows with
            the square of their number (10,000: 0.8 GB), so larger sets are refused.
        fingerprint, radius, n_bits: as :func:`fp_random_forest`.
        descriptors: append the standardised RDKit 2D descriptors (default on).
    """
    folds = _positive_int("fp_kernel_ridge", "cv_folds", cv_folds)
    if folds < 2:
        raise ConfigError(
            f"The 'cv_folds' parameter of fp_kernel_ridge must be at least 2. Got {folds}.",
            hint="Set model.params.cv_folds to e.g. 5.",
        )
    return _fp_spec(
        "fp_kernel_ridge",
        "kernel_ridge",
        fingerprint=fingerprint,
        radius=radius,
        n_bits=n_bits,
        descriptors=descriptors,
        params={
            "alphas": _grid("fp_kernel_ridge", "alphas", alphas),
            "gammas": _grid("fp_kernel_ridge", "gammas", gammas),
            "cv_folds": folds,
            "cv_repeats": _positive_int("fp_kernel_ridge", "cv_repeats", cv_repeats),
            "max_train": _positive_int("fp_kernel_ridge", "max_train", max_train),
        },
    )


def make_estimator(
    spec: Mapping[str, Any],
    *,
    task_type: Literal["classification", "regression"],
    seed: int = 0,
    class_weight: str | None = None,
    n_jobs: int | None = 1,
) -> Any:
    """One unfitted scikit-learn estimator for one target of a fingerprint spec.

    Args:
        spec: what ``fp_random_forest`` / ``fp_gradient_boosting`` / ``fp_kernel_ridge``
            return. The kernel ridge's estimator is a ``GridSearchCV`` whose
            ``best_estimator_`` is the fitted model.
        task_type: ``classification`` (binary) or ``regression``.
        seed: ``random_state``.
        class_weight: ``"balanced"`` or ``None`` (classification only).
        n_jobs: random-forest worker threads.
    """
    p = dict(spec["params"])
    classify = task_type == "classification"
    if spec["estimator"] == "kernel_ridge":
        return _kernel_ridge_search(p, classify=classify, seed=seed)
    if spec["estimator"] == "random_forest":
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        if p.get("max_features") == "auto":
            p["max_features"] = "sqrt" if classify else 1.0
        if classify:
            cw = "balanced_subsample" if class_weight == "balanced" else None
            return RandomForestClassifier(class_weight=cw, random_state=seed, n_jobs=n_jobs, **p)
        return RandomForestRegressor(random_state=seed, n_jobs=n_jobs, **p)
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if classify:
        return HistGradientBoostingClassifier(
            class_weight="balanced" if class_weight == "balanced" else None,
            random_state=seed,
            **p,
        )
    return HistGradientBoostingRegressor(random_state=seed, **p)


def _kernel_ridge_search(p: dict[str, Any], *, classify: bool, seed: int) -> KernelRidgeSearch:
    """The k-fold search of :func:`fp_kernel_ridge` (refits the best pair on every row)."""
    if classify:
        raise ConfigError(
            "fp_kernel_ridge predicts numbers (regression); it has no class probabilities.",
            hint="For a binary or multilabel task use fp_gradient_boosting or "
            "fp_random_forest (alone or as model.params.blend).",
        )
    return KernelRidgeSearch(
        alphas=p["alphas"],
        gammas=p["gammas"],
        cv_folds=int(p["cv_folds"]),
        cv_repeats=int(p["cv_repeats"]),
        seed=seed,
    )


class KernelRidgeSearch:
    """Choose an RBF kernel ridge's ``(alpha, gamma)`` by k-fold cross-validation, then refit.

    The same search as scikit-learn's ``GridSearchCV`` over
    ``TransformedTargetRegressor(KernelRidge(kernel="rbf"), StandardScaler())`` with
    ``RepeatedKFold`` (``KFold`` for one repeat) and RMSE scoring (a test checks the two
    agree), computed faster: per fold the
    squared distances are computed once and, per ``gamma``, the kernel is diagonalised once,
    so every ``alpha`` costs a matrix product. The fitted model (``best_estimator_``) is the
    plain scikit-learn estimator, which is what a bundle stores.

    Attributes (after :meth:`fit`):
        best_params_: ``{"regressor__alpha": ..., "regressor__gamma": ...}``.
        best_score_: minus the best mean RMSE over all folds (target units).
        best_estimator_: the ``TransformedTargetRegressor`` refitted on every row.
    """

    def __init__(
        self,
        *,
        alphas: list[float],
        gammas: list[float],
        cv_folds: int = 5,
        cv_repeats: int = 1,
        seed: int = 0,
    ) -> None:
        self.alphas = [float(a) for a in alphas]
        self.gammas = [float(g) for g in gammas]
        self.cv_folds = int(cv_folds)
        self.cv_repeats = int(cv_repeats)
        self.seed = int(seed)

    def fit(self, X: Any, y: Any) -> KernelRidgeSearch:
        import numpy as np
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.kernel_ridge import KernelRidge
        from sklearn.metrics.pairwise import euclidean_distances
        from sklearn.model_selection import KFold, RepeatedKFold
        from sklearn.preprocessing import StandardScaler

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        folds = min(self.cv_folds, len(y))
        if folds < 2:
            raise ConfigError(
                f"fp_kernel_ridge: {len(y)} labelled training molecule(s) cannot be split into "
                "cross-validation folds.",
                hint="Give the model more labelled molecules.",
            )
        d2 = euclidean_distances(X, squared=True)
        sums = np.zeros((len(self.alphas), len(self.gammas)))
        splitter = (
            KFold(folds, shuffle=True, random_state=self.seed)
            if self.cv_repeats <= 1
            else RepeatedKFold(n_splits=folds, n_repeats=self.cv_repeats, random_state=self.seed)
        )
        n_folds = 0
        for fit_idx, test_idx in splitter.split(X):
            n_folds += 1
            mu, sd = y[fit_idx].mean(), y[fit_idx].std()
            sd = sd if sd > 0 else 1.0
            z = (y[fit_idx] - mu) / sd
            inner = d2[np.ix_(fit_idx, fit_idx)]
            cross = d2[np.ix_(test_idx, fit_idx)]
            for j, g in enumerate(self.gammas):
                vals, vecs = np.linalg.eigh(np.exp(-g * inner))
                proj = vecs.T @ z
                k_test = np.exp(-g * cross) @ vecs
                for i, a in enumerate(self.alphas):
                    pred = k_test @ (proj / (vals + a)) * sd + mu
                    sums[i, j] += np.sqrt(np.mean((pred - y[test_idx]) ** 2))
        means = sums / n_folds
        i, j = np.unravel_index(int(np.argmin(means)), means.shape)  # ties: the first pair
        self.best_params_ = {"regressor__alpha": self.alphas[i], "regressor__gamma": self.gammas[j]}
        self.best_score_ = -float(means[i, j])
        self.best_estimator_ = TransformedTargetRegressor(
            regressor=KernelRidge(kernel="rbf", alpha=self.alphas[i], gamma=self.gammas[j]),
            transformer=StandardScaler(),
        ).fit(X, y)
        return self
