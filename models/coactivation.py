"""Co-activation: accounts that were quiet for weeks and then woke together (sleeper rings).

Why: a sleeper ring shares almost nothing. Its accounts are opened weeks or months apart, each
on its own device and number, and wait. Identifier linking sees at most a thin chain, or nothing.
What gives the ring away is time. The accounts wake together: within a few days they first pay
the same new payees (a collector, a drain account), long after they were opened. Honest payees
gain payers gradually over months; a popular shop has hundreds, each arriving on their own day.

A **burst cohort** of payee ``p`` is the set of its payers whose first payment to ``p`` falls
within ``burst_days`` of the first payment ``p`` ever received (``t0(p)``), when

* ``p`` is small: it takes part in linking (``linking.eligible``: at most ``degree_cap`` payers,
  and a merchant at most ``merchant_degree_cap``);
* ``p`` was born in the burst: the cohort holds at least ``born_share`` of its payers;
* each cohort member had been open for at least ``quiet_days`` when it first paid ``p`` (it was
  dormant: an account that pays on the day it opens is onboarding, which the creation-burst and
  co-arrival signals already cover);
* the cohort has at least ``min_members`` accounts (two accounts are not a ring).

With ``C`` the accounts x cohorts incidence matrix, the co-activation link matrix is

    A = weight * C Cᵀ      (diagonal dropped)

so every pair in one cohort gets ``weight`` (default 0.3, above the strong-link threshold of
0.25: one shared burst links, however big the cohort, since a bigger synchronised wake is more
suspicious, not less) and pairs that woke together on several payees get that many times it.

**Onboarding cohorts** (cash-out rings) are the same idea at the other end of an account's life.
A cash-out ring opens its accounts within days and each spends its credit at once at the one
colluding merchant, which exists for the ring: its payers are all new, and paid it in their first
days. Honest sign-ups do pay on their first day, but at shops that strangers also pay (a big
merchant is a hub, left out), or each at its own shop. An onboarding cohort of payee ``p`` is the
set of its payers whose first payment to ``p`` came within ``fresh_days`` of the account's
opening and within ``fresh_burst_days`` of ``t0(p)``, kept under the same rules of size and
birth (small payee, at least ``min_members``, at least ``born_share`` of its payers). Its pairs
get ``fresh_weight`` each, like a wake's. They are links only: the cluster features' cohorts
(``coactivation_share``, the days quiet) stay the sleepers', whose meaning the cluster prior
learned.

Shapes: ``Projection`` of ``n`` accounts -> ``Cohorts`` with ``members (n, m)`` sparse 0/1,
``payee (m,)`` payee indices into the payee kind, ``quiet_days (n,)`` the least days an account
was open before its burst (-1 for accounts in no cohort); ``coactivation_matrix -> (n, n)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ringscope.kinds import PAYEE
from ringscope.models.linking import DAY, LinkParams, dedupe_pairs, eligible
from ringscope.models.projection import F64, I64, Projection


@dataclass(frozen=True)
class CoactivationParams:
    burst_days: int = 3
    quiet_days: int = 21
    born_share: float = 0.5
    min_members: int = 3
    weight: float = 0.3
    fresh_days: int = 7
    fresh_burst_days: int = 30
    fresh_weight: float = 0.3


@dataclass(frozen=True)
class Cohorts:
    members: sp.csr_matrix  # (n accounts, m cohorts), 1 where the account is in the cohort
    payee: I64  # (m,) payee index (into proj.kinds["payee"]) of each cohort
    quiet_days: F64  # (n,) days the account was open before its (earliest) burst; -1 if none

    @property
    def n_cohorts(self) -> int:
        return len(self.payee)


def _empty(n: int) -> Cohorts:
    return Cohorts(
        sp.csr_matrix((n, 0), dtype=np.float64),
        np.zeros(0, dtype=np.int64),
        np.full(n, -1.0),
    )


def burst_cohorts(
    proj: Projection, link: LinkParams, params: CoactivationParams, *, fresh: bool = False
) -> Cohorts:
    """Every payee's burst cohort (see the module doc), vectorised over all payments; with
    ``fresh``, its onboarding cohort instead (payers new to the platform, not dormant ones)."""
    n = proj.n
    edges = proj.kinds.get(PAYEE.name)
    if edges is None or not len(edges.acc):
        return _empty(n)
    acc, payee, first, _, _ = dedupe_pairs(edges)
    ok = eligible(edges, link)[payee] & (first >= 0)
    acc, payee, first = acc[ok], payee[ok], first[ok]
    if not len(acc):
        return _empty(n)
    t0 = np.full(edges.m, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(t0, payee, first)
    payers = np.bincount(payee, minlength=edges.m)
    created = proj.created[acc]
    quiet = np.where(created >= 0, (first - created) / DAY, -1.0)
    if fresh:
        in_burst = first <= t0[payee] + params.fresh_burst_days * DAY
        member = in_burst & (quiet >= 0) & (quiet <= params.fresh_days)  # -1: not known
    else:
        in_burst = first <= t0[payee] + params.burst_days * DAY
        member = in_burst & (quiet >= params.quiet_days)
    size = np.bincount(payee[member], minlength=edges.m)
    good = (size >= params.min_members) & (size >= params.born_share * np.maximum(payers, 1))
    keep = member & good[payee]
    if not keep.any():
        return _empty(n)
    used, col = np.unique(payee[keep], return_inverse=True)
    members = sp.csr_matrix(
        (np.ones(int(keep.sum())), (acc[keep], col.ravel())), shape=(n, len(used))
    )
    members.sum_duplicates()
    members.data[:] = 1.0
    least = np.full(n, np.inf)
    np.minimum.at(least, acc[keep], quiet[keep])
    return Cohorts(members, used.astype(np.int64), np.where(np.isinf(least), -1.0, least))


def coactivation_matrix(
    cohorts: Cohorts, params: CoactivationParams, *, fresh: bool = False
) -> sp.csr_matrix:
    """``weight * C Cᵀ`` without the diagonal: the links of accounts that woke together (with
    ``fresh``, that arrived together: ``fresh_weight``)."""
    c = cohorts.members
    a = sp.csr_matrix((params.fresh_weight if fresh else params.weight) * (c @ c.T))
    a.setdiag(0.0)
    a.eliminate_zeros()
    return a
