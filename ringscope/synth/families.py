"""Ties inside families, which some worlds have and the default world does not.

Real families share more than a tablet and a home IP: a parent's bank card is bound to a
teenager's and a grandparent's accounts, and an elderly relative's account is opened with a
child's ID document. Those are the identifiers a detector leans on for rings, so a world with
many such families is a harder one. Fraudsters have families too: a ring member's own household
is linked to the ring member through the home IP or a family card, so a detector that follows
the ring's edges finds honest relatives next to it.

Every draw comes from this stage's own streams, and only when a share is above zero, so the
default world (all three shares zero) is exactly what it was before this stage existed.
"""

from __future__ import annotations

import numpy as np

from ringscope.synth.arrays import Arr, _counts
from ringscope.synth.world import DAY, TYPOLOGIES, YEAR, _World

# Ring members who are real people with families of their own (synthetic identities are not,
# and ATO victims are honest accounts that may already be in a household).
_FAMILY_TYPOLOGIES = ("cash_out", "mule", "sleeper")
_VIA_IP = 0.6  # a ring member tied to a family: through the home IP (else a family card)


def _families(w: _World) -> None:
    """Shared family cards and documents, and fraudsters' own families (``WorldParams``)."""
    if len(w.hh_ip) == 0:
        return
    if w.p.household_card_share > 0:
        _family_cards(w, w.stream("family-cards"))
    if w.p.household_doc_share > 0:
        _family_documents(w, w.stream("family-documents"))
    if w.p.ring_family_share > 0:
        _ring_families(w, w.stream("ring-families"))


def _chosen(rng: np.random.Generator, n: int, share: float) -> tuple[Arr, Arr]:
    """Which of ``n`` households are chosen, and each one's index among the chosen."""
    chosen = rng.random(n) < share
    return chosen, np.cumsum(chosen) - 1


def _family_cards(w: _World, rng: np.random.Generator) -> None:
    """A parent's card, bound to every account of the household."""
    mem, g = w.hh_members, w.hh_index
    chosen, k = _chosen(rng, len(w.hh_ip), w.p.household_card_share)
    cards = w.card.new(int(chosen.sum()))
    sel = chosen[g]
    a = mem[sel]
    w.sight(w.e_id["bank_card"], rng, a, cards[k[g[sel]]], w.created[a], w.t_end,
            _counts(rng, (w.t_end - w.created[a]) / YEAR))  # fmt: skip


def _family_documents(w: _World, rng: np.random.Generator) -> None:
    """Accounts opened with one relative's ID document: ID-verified, with no document of their
    own (the everyday-life stage gives none to an account whose ``own_doc`` is off)."""
    mem, g = w.hh_members, w.hh_index
    chosen, k = _chosen(rng, len(w.hh_ip), w.p.household_doc_share)
    docs = w.doc.new(int(chosen.sum()))
    sel = chosen[g]
    a = mem[sel]
    w.kyc[a] = np.maximum(w.kyc[a], 2)
    w.own_doc[a] = False
    w.sight(w.e_id["id_document"], rng, a, docs[k[g[sel]]], w.created[a],
            w.created[a] + 3 * DAY, rng.integers(1, 3, len(a)))  # fmt: skip


def _ring_families(w: _World, rng: np.random.Generator) -> None:
    """Ring members tied to a household of honest accounts, one household each (never two
    members of a ring in one household: that would be a second link inside the ring)."""
    codes = [TYPOLOGIES.index(t) + 1 for t in _FAMILY_TYPOLOGIES]
    who = np.flatnonzero(np.isin(w.typology, codes))
    who = who[rng.random(len(who)) < w.p.ring_family_share]
    n = min(len(who), len(w.hh_ip))
    who = rng.permutation(who)[:n]
    hh = rng.permutation(len(w.hh_ip))[:n]
    via_ip = (rng.random(n) < _VIA_IP) & w.hh_shares_ip[hh]
    # at home on the family's IP
    a = who[via_ip]
    w.own_home[a] = False
    w.sight(w.e_id["ip"], rng, a, w.hh_ip[hh[via_ip]], w.created[a], w.t_end,
            _counts(rng, 3 * (w.t_end - w.created[a]) / YEAR))  # fmt: skip
    # a family card on the ring member's account and on one relative's
    a = who[~via_ip]
    relative = w.hh_members[np.searchsorted(w.hh_index, hh[~via_ip])]
    cards = w.card.new(len(a))
    both = np.concatenate([a, relative])
    w.sight(w.e_id["bank_card"], rng, both, np.concatenate([cards, cards]), w.created[both],
            w.t_end, _counts(rng, (w.t_end - w.created[both]) / YEAR))  # fmt: skip
