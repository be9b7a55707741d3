"""The mechanics of a synthetic world, and how to draw a differently built one.

Why: a detector tuned on one generator's world learns that world's constants (how many honest
phones look like emulators, how big a household is, when labels arrive), not fraud. Every knob
the generator used to hard-code lives here, so that :meth:`WorldParams.draw` can build many
worlds that differ in those mechanics, and a detector is judged on all of them (bench/worlds.py).

``WorldParams()`` is exactly the world the generator always built: generating with it, or with
no world at all, writes the same bytes. ``WorldParams.draw(world_seed)`` draws every knob from a
wide range (``RANGES``; the defaults lie inside them, so the default world is one possible world).
World seeds 1-99 are for development; 100 and up are held out: report on them, never tune on them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from ringscope.synth.arrays import _rng

# The kinds of draw per knob: "u" uniform, "log" log-uniform, "int" uniform integer (inclusive).
RANGES: dict[str, tuple[float, float, str]] = {
    # population and activity
    "fraud_rate": (0.01, 0.04, "u"),
    "ring_share": (0.45, 0.85, "u"),
    "foreign_share": (0.005, 0.06, "u"),
    "payments_per_year": (3.0, 14.0, "log"),
    "second_device_share": (0.15, 0.55, "u"),
    # honest devices and phones that look like fraud's
    "honest_emulator_rate": (0.001, 0.1, "log"),
    "honest_virtual_phone_rate": (0.0, 0.06, "u"),
    # households
    "household_share": (0.15, 0.5, "u"),
    "household_size_max": (3, 8, "int"),
    "household_size_alpha": (0.8, 2.4, "u"),
    "household_tablet_share": (0.3, 0.95, "u"),
    "household_ip_share": (0.75, 1.0, "u"),
    "household_phone_share": (0.05, 0.5, "u"),
    "household_card_share": (0.0, 0.4, "u"),
    "household_doc_share": (0.0, 0.15, "u"),
    # offices, campuses, internet cafes, carrier NAT, recycled numbers
    "office_share": (0.03, 0.15, "u"),
    "office_size_min": (5, 20, "int"),
    "office_size_max": (60, 400, "int"),
    "office_size_alpha": (1.0, 2.2, "u"),
    "campus_share": (0.0, 0.1, "u"),
    "campus_size_min": (15, 50, "int"),
    "campus_size_max": (100, 500, "int"),
    "campus_size_alpha": (0.8, 1.8, "u"),
    "cafe_share": (0.01, 0.08, "u"),
    "cafe_size_min": (6, 20, "int"),
    "cafe_size_max": (30, 150, "int"),
    "cafe_size_alpha": (0.6, 1.6, "u"),
    "cafe_pcs_max": (6, 30, "int"),
    "nat_accounts_per_ip": (400.0, 6000.0, "log"),
    "recycled_phone_share": (0.002, 0.03, "u"),
    # labels
    "fraud_label_rate": (0.1, 0.6, "u"),
    "legit_label_rate": (0.005, 0.08, "log"),
    "label_noise": (0.0, 0.06, "u"),
    "label_delay_min_days": (3, 45, "int"),
    "label_delay_max_days": (60, 365, "int"),
    "unlabelled_ring_share": (0.0, 0.5, "u"),
    # rings: density, sizes, ties to the fraudsters' own families, timing
    "ring_size_max": (20, 150, "int"),
    "ring_size_alpha": (1.4, 2.6, "u"),
    "ring_family_share": (0.0, 0.4, "u"),
    "cash_out_window_max_days": (3, 60, "int"),
    "mule_burst_max_days": (1, 20, "int"),
    "mule_late_share": (0.0, 0.5, "u"),
    "synthetic_window_max_days": (45, 240, "int"),
    "synthetic_emulator_share": (0.2, 0.95, "u"),
    "ato_window_max_days": (1, 10, "int"),
    "ato_emulator_share": (0.05, 0.7, "u"),
    "sleeper_window_min_days": (14, 100, "int"),
    "sleeper_window_max_days": (120, 600, "int"),
    "sleeper_burst_share": (0.0, 1.0, "u"),
    "lone_emulator_share": (0.2, 0.8, "u"),
    "lone_virtual_share": (0.2, 0.8, "u"),
}
KYC_LOW_RANGE = (0.15, 0.6)  # the share of honest accounts at KYC 0-1
TYPOLOGY_WEIGHT_RANGE = (0.05, 1.0)  # each typology's weight before normalising


@dataclass(frozen=True)
class WorldParams:
    """Every mechanic of a world; the defaults are the generator's one historical world.

    Shares are probabilities; ``*_min``/``*_max`` are inclusive bounds (days or accounts);
    ``*_alpha`` are power-law exponents of group sizes (bigger: more small groups). ``seed`` is
    the world seed a drawn world came from (None for the default or a hand-made world).
    """

    seed: int | None = None
    fraud_rate: float = 0.02
    ring_share: float = 0.7
    foreign_share: float = 0.02
    payments_per_year: float = 6.0
    second_device_share: float = 0.35
    # KYC 0..3 of accounts before fraud roles rewrite theirs
    kyc_p: tuple[float, float, float, float] = (0.05, 0.3, 0.45, 0.2)
    # per Android personal device ("dual app" cloners look like emulators); per personal phone
    honest_emulator_rate: float = 0.004
    honest_virtual_phone_rate: float = 0.0
    household_share: float = 0.3
    household_size_max: int = 5  # households have 2..max members
    household_size_alpha: float = 1.6
    household_tablet_share: float = 0.7
    household_ip_share: float = 0.95
    household_phone_share: float = 0.25
    household_card_share: float = 0.0  # a parent's card bound to the others' accounts
    household_doc_share: float = 0.0  # accounts opened with a relative's ID document
    office_share: float = 0.08
    office_size_min: int = 10
    office_size_max: int = 200
    office_size_alpha: float = 1.5
    campus_share: float = 0.05
    campus_size_min: int = 30
    campus_size_max: int = 200
    campus_size_alpha: float = 1.2
    cafe_share: float = 0.03
    cafe_size_min: int = 15
    cafe_size_max: int = 80
    cafe_size_alpha: float = 1.0
    cafe_pcs_max: int = 12  # each cafe has 3..max PCs
    nat_accounts_per_ip: float = 1875.0  # accounts per carrier NAT address
    recycled_phone_share: float = 0.01
    fraud_label_rate: float = 0.35
    legit_label_rate: float = 0.03
    label_noise: float = 0.015
    label_delay_min_days: int = 14  # a fraud label arrives min..max-1 days after the fraud
    label_delay_max_days: int = 120
    unlabelled_ring_share: float = 0.0  # rings not yet discovered: none of them labelled
    ring_size_max: int = 60  # rings have 3..max members
    ring_size_alpha: float = 1.9
    # weights of cash_out, mule, synthetic, ato, sleeper among rings (summing to 1)
    typology_weights: tuple[float, float, float, float, float] = (0.25, 0.25, 0.2, 0.15, 0.15)
    ring_family_share: float = 0.0  # ring members linked to a household (home IP or a card)
    cash_out_window_max_days: int = 20  # a cash-out ring opens its accounts within 2..max days
    mule_burst_max_days: int = 5  # a mule ring's burst of openings lasts 1..max days
    mule_late_share: float = 0.2  # mule accounts opened later, within 60 days of the burst
    synthetic_window_max_days: int = 120  # synthetic identities open within 30..max days
    synthetic_emulator_share: float = 0.7  # share of synthetic rings whose farm is emulators
    ato_window_max_days: int = 3  # a takeover wave lasts 1..max days
    ato_emulator_share: float = 0.3  # per attacking device
    sleeper_window_min_days: int = 100  # a sleeper ring opens within min..max days
    sleeper_window_max_days: int = 500
    sleeper_burst_share: float = 0.0  # sleeper rings that wake together and pay the same payees
    # Rings (all but takeovers) whose last-opened quarter comes back after the ring struck: new
    # accounts on the ring's farm devices, numbers and documents (``rings._return``). Not drawn:
    # a knob for the screening bench (bench/arrivals.py), where a ring coming back is the case.
    ring_return_share: float = 0.0
    lone_emulator_share: float = 0.5
    lone_virtual_share: float = 0.5

    @classmethod
    def draw(cls, world_seed: int) -> WorldParams:
        """A world whose every mechanic is drawn from ``RANGES`` (a pure function of the seed).

        Each knob has its own random stream, so adding a knob later leaves every other knob of
        every world seed, held-out worlds included, as it was.
        """
        values: dict[str, Any] = {"seed": world_seed}
        for name, (lo, hi, kind) in RANGES.items():
            rng = _rng(world_seed, f"world:{name}")
            if kind == "int":
                values[name] = int(rng.integers(int(lo), int(hi) + 1))
            elif kind == "log":
                values[name] = round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 6)
            else:
                values[name] = round(float(rng.uniform(lo, hi)), 6)
        rng = _rng(world_seed, "world:kyc_p")
        low = float(rng.uniform(*KYC_LOW_RANGE))
        k0 = low * float(rng.uniform(0.05, 0.35))
        k3 = (1.0 - low) * float(rng.uniform(0.15, 0.45))
        values["kyc_p"] = _normalised((k0, low - k0, 1.0 - low - k3, k3))
        rng = _rng(world_seed, "world:typology_weights")
        values["typology_weights"] = _normalised(rng.uniform(*TYPOLOGY_WEIGHT_RANGE, 5).tolist())
        return cls(**values).validated()

    def validated(self) -> WorldParams:
        """This world, or ValueError naming the knob that no generator run could honour."""
        for name, (lo, hi, _) in RANGES.items():
            v = getattr(self, name)
            if not lo <= v <= hi:
                raise ValueError(f"world parameter {name}={v} is outside [{lo}, {hi}]")
        for name, n in (("kyc_p", 4), ("typology_weights", 5)):
            p = getattr(self, name)
            if len(p) != n or min(p) < 0 or abs(sum(p) - 1.0) > 1e-5:
                raise ValueError(f"world parameter {name}={p} is not {n} shares summing to 1")
        low = self.kyc_p[0] + self.kyc_p[1]
        if not KYC_LOW_RANGE[0] - 1e-5 <= low <= KYC_LOW_RANGE[1] + 1e-5:
            raise ValueError(f"world parameter kyc_p has {low:.3f} at KYC 0-1, outside range")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: what ``manifest.json`` records under ``"world"``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldParams:
        """The inverse of :meth:`to_dict` (a manifest's ``"world"``); unknown keys are refused."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown world parameter(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)


def _normalised(xs: Any) -> Any:
    """Shares summing to 1, rounded for a readable manifest (users divide by the sum)."""
    return tuple(round(float(x), 6) for x in np.asarray(xs, dtype=np.float64) / np.sum(xs))
