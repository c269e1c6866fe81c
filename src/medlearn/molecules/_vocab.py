"""Token vocabularies for molecule generators: SMILES and SELFIES tokenisation, encode/decode.

A generator reads a molecule as a sequence of tokens. Two representations are supported:

* ``"smiles"`` — SMILES split into atoms (bracket atoms such as ``[nH]`` and the two-letter
  organic atoms ``Cl`` / ``Br`` stay whole), bonds, branches and ring closures (``%12``
  is one token). Joining the tokens gives the string back exactly.
* ``"selfies"`` — SELFIES (Krenn et al. 2020) tokens such as ``[C]``, ``[=O]``,
  ``[Branch1]``. Every sequence of SELFIES tokens decodes to a valid molecule, so a SELFIES
  generator has validity 1.0 by construction.

:class:`Vocabulary` maps tokens to ids with four special tokens (``<pad>``, ``<bos>``,
``<eos>``, ``<unk>``); it is built on the training molecules only and saved as JSON.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from medlearn.errors import CheckpointError, ConfigError

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "UNK",
    "Representation",
    "Vocabulary",
    "canonical_smiles",
    "from_tokens",
    "is_constrained",
    "smiles_tokens",
    "to_tokens",
]

Representation = Literal["smiles", "selfies"]
REPRESENTATIONS: tuple[str, ...] = ("smiles", "selfies")

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")

# bracket atoms | two-letter organic atoms | %NN ring closures | any other single character
_SMILES_TOKEN = re.compile(r"\[[^\[\]]+\]|Br|Cl|%\d{2}|.", re.DOTALL)
# the atom inside a SELFIES token: bond prefix, isotope, element, chirality, H count, charge
_SELFIES_ATOM = re.compile(r"^[=#/\\]?(\d*)([A-Z][a-z]?|[a-z][a-z]?)(@@|@)?(H\d+)?([+-]\d+)?$")
_SMILES_ORGANIC = {"B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I", "b", "c", "n", "o", "p", "s"}


def smiles_tokens(smiles: str) -> list[str]:
    """Split a SMILES string into tokens; ``"".join(tokens) == smiles``.

    Example:
        >>> smiles_tokens("Clc1ccc[nH]1")
        ['Cl', 'c', '1', 'c', 'c', 'c', '[nH]', '1']
    """
    return _SMILES_TOKEN.findall(smiles)


def _is_structural(token: str) -> bool:
    """SELFIES tokens that are not atoms: branches, rings, ``[nop]`` and ``.``."""
    return "Branch" in token or "Ring" in token or token in ("[nop]", ".")


@lru_cache(maxsize=1)
def _constrained_atoms() -> frozenset[str]:
    import selfies as sf

    return frozenset(sf.get_semantic_constraints())


@lru_cache(maxsize=4096)
def is_constrained(token: str) -> bool:
    """Whether a SELFIES token is structural or an atom SELFIES knows the valence of.

    SELFIES guarantees a valid molecule only for atoms in its semantic-constraint table
    (``selfies.get_semantic_constraints()``: H, B, C, N, O, F, P, S, Cl, Br, I and common
    charged forms); others (Si, Se, metals) fall back to a permissive default, and RDKit can
    refuse the result. Generators skip training molecules with unconstrained atoms, so every
    sampled sequence decodes to a valid molecule.
    """
    if _is_structural(token):
        return True
    m = _SELFIES_ATOM.match(token[1:-1]) if token.startswith("[") else None
    if m is None:
        return False
    key = m.group(2) + (m.group(5) or "")
    return key in _constrained_atoms()


def canonical_smiles(smiles: str | None) -> str | None:
    """RDKit's canonical SMILES of ``smiles``, or ``None`` when it is empty or invalid."""
    from rdkit import Chem, rdBase

    if not smiles:
        return None
    with rdBase.BlockLogs():
        mol = Chem.MolFromSmiles(smiles)
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return str(Chem.MolToSmiles(mol))


def _check_representation(representation: str) -> None:
    if representation not in REPRESENTATIONS:
        raise ConfigError(
            f"The 'representation' parameter must be one of {', '.join(REPRESENTATIONS)}. "
            f"Got {representation!r}.",
            hint="Use representation: selfies (always valid) or smiles.",
        )


def to_tokens(smiles: str, representation: Representation) -> list[str] | None:
    """Tokens of a (canonical) SMILES in ``representation``; ``None`` if it cannot be encoded
    (SELFIES refuses a few exotic valences)."""
    _check_representation(representation)
    if representation == "smiles":
        return smiles_tokens(smiles)
    import selfies as sf

    try:
        encoded = sf.encoder(smiles)
    except Exception:  # noqa: BLE001 - selfies raises EncoderError and RDKit-like errors
        return None
    if not encoded:
        return None
    return list(sf.split_selfies(encoded))


def from_tokens(tokens: Sequence[str], representation: Representation) -> str | None:
    """Canonical SMILES of a token sequence, or ``None`` when it is not a valid molecule."""
    if not tokens:
        return None
    if representation == "smiles":
        return canonical_smiles("".join(tokens))
    import selfies as sf

    try:
        smiles = sf.decoder("".join(tokens))
    except Exception:  # noqa: BLE001 - malformed SELFIES raise DecoderError
        return None
    return canonical_smiles(smiles)


class Vocabulary:
    """Token ↔ id mapping with ``<pad>`` = 0, ``<bos>`` = 1, ``<eos>`` = 2, ``<unk>`` = 3.

    Args:
        tokens: the non-special tokens, in id order (ids start at 4).
        representation: ``"smiles"`` or ``"selfies"``.
    """

    def __init__(self, tokens: Sequence[str], representation: Representation) -> None:
        _check_representation(representation)
        self.representation: Representation = representation
        self.tokens: list[str] = [*SPECIALS, *[t for t in tokens if t not in SPECIALS]]
        self.index: dict[str, int] = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def build(
        cls, sequences: Iterable[Sequence[str]], representation: Representation, min_count: int = 1
    ) -> Vocabulary:
        """A vocabulary of every token seen at least ``min_count`` times, most frequent first
        (ties by token, so the order is deterministic)."""
        counts: Counter[str] = Counter()
        for seq in sequences:
            counts.update(seq)
        kept = sorted(
            (t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t)
        )
        return cls(kept, representation)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens`` (unknown tokens → ``<unk>``), without ``<bos>`` / ``<eos>``."""
        return [self.index.get(t, UNK) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids`` up to the first ``<eos>``; specials are dropped."""
        out: list[str] = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i >= len(SPECIALS):
                out.append(self.tokens[i])
        return out

    def start_mask(self) -> list[bool]:
        """Per id, whether the token may open a molecule (an atom; not a bond, branch, ring
        or special token), so no sample decodes to an empty molecule."""
        out = []
        for i, t in enumerate(self.tokens):
            if i < len(SPECIALS):
                out.append(False)
            elif self.representation == "selfies":
                out.append(not _is_structural(t))
            else:
                out.append(t.startswith("[") or t in _SMILES_ORGANIC)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state."""
        return {"representation": self.representation, "tokens": self.tokens[len(SPECIALS) :]}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> Vocabulary:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            CheckpointError: if the state is malformed.
        """
        try:
            tokens = [str(t) for t in state["tokens"]]
            representation = state["representation"]
        except (KeyError, TypeError) as exc:
            raise CheckpointError(
                f"The generator vocabulary is malformed ({type(exc).__name__})."
            ) from None
        return cls(tokens, representation)
