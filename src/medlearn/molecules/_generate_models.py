"""Molecule generators: a sequence VAE (SELFIES or SMILES) and a character RNN, registered.

* :class:`SequenceVAE` — a GRU encoder reads the token sequence and gives the mean ``μ`` and
  log-variance ``log σ²`` of a Gaussian posterior over a latent code ``z``; a GRU decoder,
  started from ``z`` and fed ``z`` at every step, predicts the next token under teacher
  forcing (Gómez-Bombarelli et al. 2018). The loss is the reconstruction cross-entropy plus
  ``β`` × KL(q(z|x) ‖ N(0, I)), with ``β`` annealed from 0. Optional word dropout replaces
  decoder inputs by ``<unk>`` so the decoder must use ``z``.
* :class:`CharRNN` — a language model over tokens (LSTM or GRU), sampled token by token
  (Segler et al. 2018).

Batches are padded (the learner groups molecules of similar length). The registered factories
return an architecture dict (``kind``, sizes, training and evaluation settings) that
:class:`medlearn.molecules._generate.MoleculeGenerator` turns into a network once the
vocabulary is known.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medlearn.errors import ConfigError
from medlearn.molecules._vocab import BOS, EOS, PAD, UNK, _check_representation
from medlearn.registry import MODELS

__all__ = ["CharRNN", "SequenceVAE", "build_generator", "char_rnn", "selfies_vae", "smiles_vae"]

_META = {
    "domain": "molecules",
    "learner": "molecule_generator",
    "reader": "molecules",
    "tasks": ("generation",),
}


# --- shared pieces ------------------------------------------------------------------------------


def _per_molecule(logits: torch.Tensor, dec_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the non-padding targets: the total and per molecule ``(B,)``.

    Args:
        logits: ``(B, T, V)``.
        dec_out: targets ``(B, T)``, ``<pad>`` where there is none.
    """
    b, t, v = logits.shape
    token_nll = nn.functional.cross_entropy(
        logits.reshape(b * t, v), dec_out.reshape(b * t), ignore_index=PAD, reduction="none"
    )
    per = token_nll.view(b, t).sum(dim=1)
    return per.sum(), per


def _masked_logits(
    logits: torch.Tensor, temperature: float, start: torch.Tensor | None
) -> torch.Tensor:
    """Logits without ``<pad>``, ``<bos>``, ``<unk>``; at the first step (``start`` given)
    only the tokens ``start`` allows."""
    logits = logits / max(float(temperature), 1e-6)
    logits[:, PAD] = -float("inf")
    logits[:, BOS] = -float("inf")
    logits[:, UNK] = -float("inf")
    if start is not None:
        logits[:, ~start] = -float("inf")
    return logits


def _first_mask(start: torch.Tensor | None, vocab_size: int) -> torch.Tensor:
    """Tokens allowed at the first step: ``start``, or everything but ``<eos>``."""
    if start is not None:
        return start.to(torch.bool)
    mask = torch.ones(vocab_size, dtype=torch.bool)
    mask[EOS] = False
    return mask


def _next_token(
    logits: torch.Tensor,
    temperature: float,
    start: torch.Tensor | None,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Sample (``temperature > 0``) or pick the most likely (``temperature == 0``) token."""
    logits = _masked_logits(logits, temperature if temperature > 0 else 1.0, start)
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# --- the VAE ------------------------------------------------------------------------------------


class SequenceVAE(nn.Module):
    """A GRU sequence VAE over token ids.

    Batches are padded, not packed: on CPU, PyTorch's backward through packed GRUs slices
    and re-pads the input at every step and is several times slower than the padded
    computation. The encoder reads each molecule's state at its last token, which padding
    after it cannot affect.

    Args:
        vocab_size: number of tokens, specials included.
        embed_dim: token embedding size.
        hidden_dim: decoder GRU hidden size.
        latent_dim: size of ``z``.
        encoder_dim: encoder GRU hidden size.
        num_layers: GRU layers (encoder and decoder).
        dropout: dropout between GRU layers (``num_layers > 1``).
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 64,
        hidden_dim: int = 256,
        latent_dim: int = 64,
        encoder_dim: int = 128,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        inter = dropout if num_layers > 1 else 0.0
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.encoder = nn.GRU(embed_dim, encoder_dim, num_layers, batch_first=True, dropout=inter)
        self.to_stats = nn.Linear(encoder_dim, 2 * latent_dim)
        self.z_to_hidden = nn.Linear(latent_dim, num_layers * hidden_dim)
        self.decoder = nn.GRU(
            embed_dim + latent_dim, hidden_dim, num_layers, batch_first=True, dropout=inter
        )
        self.out = nn.Linear(hidden_dim, vocab_size)

    def encode(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior parameters of a length-sorted batch.

        Args:
            x: token ids ``(B, T)`` without ``<bos>`` / ``<eos>``, padded with ``<pad>``.
            lengths: ``(B,)`` sequence lengths (>= 1).

        Returns:
            ``(mu, logvar)``, each ``(B, latent_dim)``.
        """
        out, _ = self.encoder(self.embed(x))
        last = out[torch.arange(x.shape[0]), lengths - 1]
        mu, logvar = self.to_stats(last).chunk(2, dim=-1)
        return mu, logvar.clamp(-10.0, 10.0)

    def _h0(self, z: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.z_to_hidden(z))
        return h.view(z.shape[0], self.num_layers, self.hidden_dim).transpose(0, 1).contiguous()

    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token logits ``(B, T, V)``.

        Args:
            z: latent codes ``(B, latent_dim)``.
            inputs: decoder inputs ``(B, T)`` starting with ``<bos>``.
        """
        emb = self.embed(inputs)
        steps = torch.cat([emb, z.unsqueeze(1).expand(-1, emb.shape[1], -1)], dim=-1)
        out, _ = self.decoder(steps, self._h0(z))
        return self.out(out)

    def loss(
        self, batch: dict[str, torch.Tensor], *, beta: float, sample_z: bool = True
    ) -> dict[str, torch.Tensor]:
        """``loss = recon + beta * kl`` per molecule (nats), averaged over the batch; ``nll``
        is each molecule's ``recon + kl`` (the negative ELBO) ``(B,)``.

        Args:
            batch: ``tokens`` ``(B, T)``, ``lengths`` ``(B,)``, ``dec_in``,
                ``dec_out`` ``(B, T + 1)`` (``<bos>`` + tokens, tokens + ``<eos>``).
            beta: the KL weight.
            sample_z: draw ``z ~ q(z|x)`` (the ELBO); ``False`` decodes from ``μ``.
        """
        mu, logvar = self.encode(batch["tokens"], batch["lengths"])
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if sample_z else mu
        logits = self.decode_logits(z, batch["dec_in"])
        total, per = _per_molecule(logits, batch["dec_out"])
        n = mu.shape[0]
        kl_each = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=-1)
        recon, kl = total / n, kl_each.sum() / n
        return {"loss": recon + beta * kl, "recon": recon, "kl": kl, "nll": per + kl_each}

    @torch.no_grad()
    def generate(
        self,
        z: torch.Tensor,
        *,
        max_len: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decode latent codes token by token.

        Args:
            z: ``(B, latent_dim)``.
            max_len: most tokens per molecule.
            temperature: softmax temperature; ``0`` decodes greedily.
            generator: torch RNG for sampling.
            start: ``(V,)`` bool, the tokens allowed first (default: all but ``<eos>``).

        Returns:
            Token ids ``(B, <= max_len)``; a row ends at its first ``<eos>``.
        """
        n = z.shape[0]
        first = _first_mask(start, self.out.out_features)
        h = self._h0(z)
        token = torch.full((n,), BOS, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        out = []
        for step in range(max_len):
            x = torch.cat([self.embed(token), z], dim=-1).unsqueeze(1)
            o, h = self.decoder(x, h)
            allowed = first if step == 0 else None
            token = _next_token(self.out(o[:, 0]), temperature, allowed, generator)
            token = torch.where(done, torch.full_like(token, EOS), token)
            out.append(token)
            done |= token == EOS
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)


# --- the character RNN ----------------------------------------------------------------------------


class CharRNN(nn.Module):
    """A token-level language model.

    Args:
        vocab_size: number of tokens, specials included.
        embed_dim: token embedding size.
        hidden_dim: recurrent hidden size.
        num_layers: recurrent layers.
        cell: ``"lstm"`` or ``"gru"``.
        dropout: dropout between layers.
    """

    def __init__(
        self,
        vocab_size: int,
        *,
        embed_dim: int = 64,
        hidden_dim: int = 256,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.rnn = rnn(
            embed_dim,
            hidden_dim,
            num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.out = nn.Linear(hidden_dim, vocab_size)

    def loss(
        self, batch: dict[str, torch.Tensor], *, beta: float = 0.0, sample_z: bool = True
    ) -> dict[str, torch.Tensor]:
        """Negative log-likelihood per molecule (nats), averaged over the batch (``beta`` and
        ``sample_z`` are accepted for a common signature with :class:`SequenceVAE`)."""
        out, _ = self.rnn(self.embed(batch["dec_in"]))
        total, per = _per_molecule(self.out(out), batch["dec_out"])
        recon = total / batch["dec_in"].shape[0]
        return {"loss": recon, "recon": recon, "kl": recon.new_zeros(()), "nll": per}

    @torch.no_grad()
    def generate(
        self,
        n: int,
        *,
        max_len: int,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sample ``n`` token sequences ``(n, <= max_len)`` (rows end at ``<eos>``); ``start``
        as in :meth:`SequenceVAE.generate`."""
        first = _first_mask(start, self.out.out_features)
        token = torch.full((n,), BOS, dtype=torch.long)
        done = torch.zeros(n, dtype=torch.bool)
        state = None
        out = []
        for step in range(max_len):
            o, state = self.rnn(self.embed(token).unsqueeze(1), state)
            allowed = first if step == 0 else None
            token = _next_token(self.out(o[:, 0]), temperature, allowed, generator)
            token = torch.where(done, torch.full_like(token, EOS), token)
            out.append(token)
            done |= token == EOS
            if bool(done.all()):
                break
        return torch.stack(out, dim=1)


def build_generator(arch: dict[str, Any], vocab_size: int) -> nn.Module:
    """The network of an architecture dict (from a registered factory) for a vocabulary."""
    net = arch["net"]
    if arch["kind"] == "vae":
        return SequenceVAE(vocab_size, **net)
    return CharRNN(vocab_size, **net)


# --- registered factories -------------------------------------------------------------------------

#: keyword arguments of every factory that configure evaluation of a generation run
EVAL_PARAMS = ("n_samples", "temperature", "optimize_starts", "optimize_steps", "similarity_min")


def _check_positive(name: str, value: Any, model: str, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(
            f"The '{name}' parameter of {model} must be a number {bound}. Got {value!r}.",
            hint=f"Fix model.params.{name} in the run file.",
        )


def _common(
    model: str,
    *,
    max_len: int,
    n_samples: int,
    temperature: float,
    optimize_starts: int,
    optimize_steps: int,
    similarity_min: float,
) -> dict[str, Any]:
    for name, value in (("max_len", max_len), ("n_samples", n_samples)):
        _check_positive(name, value, model)
    _check_positive("temperature", temperature, model)
    _check_positive("optimize_starts", optimize_starts, model, allow_zero=True)
    _check_positive("optimize_steps", optimize_steps, model, allow_zero=True)
    if not 0.0 <= float(similarity_min) <= 1.0:
        raise ConfigError(
            f"The 'similarity_min' parameter of {model} must be in [0, 1]. Got {similarity_min!r}.",
            hint="A Tanimoto similarity; 0.4 is the usual constraint.",
        )
    return {
        "max_len": int(max_len),
        "evaluation": {
            "n_samples": int(n_samples),
            "temperature": float(temperature),
            "optimize_starts": int(optimize_starts),
            "optimize_steps": int(optimize_steps),
            "similarity_min": float(similarity_min),
        },
    }


def _vae(
    name: str,
    representation: str,
    *,
    embed_dim: int,
    hidden_dim: int,
    latent_dim: int,
    encoder_dim: int,
    num_layers: int,
    dropout: float,
    word_dropout: float,
    kl_weight: float,
    kl_anneal_steps: int,
    common: dict[str, Any],
) -> dict[str, Any]:
    _check_representation(representation)
    for key, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim)):
        _check_positive(key, value, name)
    _check_positive("latent_dim", latent_dim, name)
    _check_positive("encoder_dim", encoder_dim, name)
    _check_positive("num_layers", num_layers, name)
    _check_positive("kl_weight", kl_weight, name, allow_zero=True)
    _check_positive("kl_anneal_steps", kl_anneal_steps, name, allow_zero=True)
    if not 0.0 <= float(word_dropout) < 1.0:
        raise ConfigError(
            f"The 'word_dropout' parameter of {name} must be in [0, 1). Got {word_dropout!r}."
        )
    return {
        "kind": "vae",
        "representation": representation,
        "net": {
            "embed_dim": int(embed_dim),
            "hidden_dim": int(hidden_dim),
            "latent_dim": int(latent_dim),
            "encoder_dim": int(encoder_dim),
            "num_layers": int(num_layers),
            "dropout": float(dropout),
        },
        "word_dropout": float(word_dropout),
        "kl_weight": float(kl_weight),
        "kl_anneal_steps": int(kl_anneal_steps),
        **common,
    }


@MODELS.register(
    "selfies_vae",
    tiny={"embed_dim": 16, "hidden_dim": 32, "latent_dim": 8, "encoder_dim": 16, "n_samples": 50},
    description="SELFIES VAE: GRU encoder → μ, log σ² → GRU decoder; validity 1.0 by "
    "construction; latent-space property optimisation.",
    **_META,
)
def selfies_vae(
    *,
    embed_dim: int = 64,
    hidden_dim: int = 256,
    latent_dim: int = 64,
    encoder_dim: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    word_dropout: float = 0.25,
    kl_weight: float = 0.25,
    kl_anneal_steps: int = 1500,
    max_len: int = 100,
    n_samples: int = 10_000,
    temperature: float = 1.0,
    optimize_starts: int = 50,
    optimize_steps: int = 40,
    similarity_min: float = 0.4,
) -> dict[str, Any]:
    """A SELFIES VAE.

    Args:
        embed_dim, hidden_dim, latent_dim, encoder_dim, num_layers, dropout: network sizes
            (``hidden_dim`` is the decoder's, ``encoder_dim`` the encoder's GRU size).
        word_dropout: share of decoder inputs replaced by ``<unk>`` while training.
        kl_weight: the final ``β`` of the KL term.
        kl_anneal_steps: optimiser steps over which ``β`` rises linearly from 0.
        max_len: most tokens per molecule; longer training molecules are skipped (counted).
        n_samples: molecules sampled by the generation task for its metrics.
        temperature: sampling temperature of the generation task.
        optimize_starts: start molecules of the latent-space QED optimisation (0 skips it).
        optimize_steps: gradient steps per start molecule.
        similarity_min: the Tanimoto similarity to its start an optimised molecule must keep.
    """
    common = _common(
        "selfies_vae",
        max_len=max_len,
        n_samples=n_samples,
        temperature=temperature,
        optimize_starts=optimize_starts,
        optimize_steps=optimize_steps,
        similarity_min=similarity_min,
    )
    return _vae(
        "selfies_vae",
        "selfies",
        embed_dim=embed_dim,
        hidden_dim=hidden_dim,
        latent_dim=latent_dim,
        encoder_dim=encoder_dim,
        num_layers=num_layers,
        dropout=dropout,
        word_dropout=word_dropout,
        kl_weight=kl_weight,
        kl_anneal_steps=kl_anneal_steps,
        common=common,
    )


@MODELS.register(
    "smiles_vae",
    tiny={"embed_dim": 16, "hidden_dim": 32, "latent_dim": 8, "encoder_dim": 16, "n_samples": 50},
    description="SMILES VAE (same network as selfies_vae over SMILES tokens; validity is "
    "learned, not guaranteed).",
    **_META,
)
def smiles_vae(
    *,
    embed_dim: int = 64,
    hidden_dim: int = 256,
    latent_dim: int = 64,
    encoder_dim: int = 128,
    num_layers: int = 1,
    dropout: float = 0.0,
    word_dropout: float = 0.25,
    kl_weight: float = 0.25,
    kl_anneal_steps: int = 1500,
    max_len: int = 120,
    n_samples: int = 10_000,
    temperature: float = 1.0,
    optimize_starts: int = 50,
    optimize_steps: int = 40,
    similarity_min: float = 0.4,
) -> dict[str, Any]:
    """A SMILES VAE; arguments as :func:`selfies_vae`."""
    common = _common(
        "smiles_vae",
        max_len=max_len,
        n_samples=n_samples,
        temperature=temperature,
        optimize_starts=optimize_starts,
        optimize_steps=optimize_steps,
        similarity_min=similarity_min,
    )
    return _vae(
        "smiles_vae",
        "smiles",
        embed_dim=embed_dim,
        hidden_dim=hidden_dim,
        latent_dim=latent_dim,
        encoder_dim=encoder_dim,
        num_layers=num_layers,
        dropout=dropout,
        word_dropout=word_dropout,
        kl_weight=kl_weight,
        kl_anneal_steps=kl_anneal_steps,
        common=common,
    )


@MODELS.register(
    "char_rnn",
    tiny={"embed_dim": 16, "hidden_dim": 32, "num_layers": 1, "n_samples": 50},
    description="Character RNN language model over SMILES (or SELFIES) tokens (LSTM/GRU).",
    **_META,
)
def char_rnn(
    *,
    representation: str = "smiles",
    embed_dim: int = 64,
    hidden_dim: int = 256,
    num_layers: int = 2,
    cell: str = "lstm",
    dropout: float = 0.0,
    max_len: int = 120,
    n_samples: int = 10_000,
    temperature: float = 1.0,
) -> dict[str, Any]:
    """A character-level language model.

    Args:
        representation: ``"smiles"`` or ``"selfies"`` tokens.
        embed_dim, hidden_dim, num_layers, dropout: network sizes.
        cell: ``"lstm"`` or ``"gru"``.
        max_len, n_samples, temperature: as :func:`selfies_vae`. A language model has no
            latent space, so the generation task skips property optimisation.
    """
    _check_representation(representation)
    if cell not in ("lstm", "gru"):
        raise ConfigError(
            f"The 'cell' parameter of char_rnn must be 'lstm' or 'gru'. Got {cell!r}."
        )
    for key, value in (("embed_dim", embed_dim), ("hidden_dim", hidden_dim)):
        _check_positive(key, value, "char_rnn")
    _check_positive("num_layers", num_layers, "char_rnn")
    common = _common(
        "char_rnn",
        max_len=max_len,
        n_samples=n_samples,
        temperature=temperature,
        optimize_starts=0,
        optimize_steps=0,
        similarity_min=0.4,
    )
    return {
        "kind": "rnn",
        "representation": representation,
        "net": {
            "embed_dim": int(embed_dim),
            "hidden_dim": int(hidden_dim),
            "num_layers": int(num_layers),
            "cell": cell,
            "dropout": float(dropout),
        },
        "word_dropout": 0.0,
        "kl_weight": 0.0,
        "kl_anneal_steps": 0,
        **common,
    }
