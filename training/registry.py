"""Training methods by name, without importing TensorFlow: what the command line offers and what takes lambda.

Each method is one class in ``training.methods`` (or anywhere: ``register_method``), imported only
when it trains.  Its entry says whether it takes a strength lambda (the adversary's weight,
DisCo's distance-correlation weight), which ``tth-adv train --lambda``/``--lambda-scan`` then set
and result names carry; a lambda-taking method without ``--lambda`` trains at its default in the
training configuration's ``lambdas`` section.  Adding a method: write its class (a subclass of
``training.methods.Unconstrained`` changing one thing) and register it here, or call
``register_method`` before training (``tests/test_training.py`` adds a toy method that way).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ttH_adv.errors import ConfigError


@dataclass(frozen=True)
class MethodSpec:
    """Where a method's class lives and whether it takes lambda."""

    target: str | type            # "module:Class", imported when the method trains, or the class itself
    takes_lambda: bool = False
    multiclass: bool = False      # trains on three classes (continuum, ttH, single Higgs), not two

    def load(self) -> type:
        """The method's class."""
        if not isinstance(self.target, str):
            return self.target
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


METHODS: dict[str, MethodSpec] = {
    "adversarial": MethodSpec("training.methods:Adversarial", takes_lambda=True),
    "classifier": MethodSpec("training.methods:Unconstrained"),
    "drop-correlated": MethodSpec("training.methods:DropCorrelated"),
    "reweight": MethodSpec("training.methods:Reweight"),
    "disco": MethodSpec("training.methods:DisCo", takes_lambda=True),
    "ddt": MethodSpec("training.methods:FixedEfficiency"),
    "mode": MethodSpec("training.methods:MomentDecomposition", takes_lambda=True),
    "mode-linear": MethodSpec("training.methods:MomentDecompositionLinear", takes_lambda=True),
    "multiclass": MethodSpec("training.methods:Multiclass", multiclass=True),
    "multiclass-adversarial": MethodSpec("training.methods:MulticlassAdversarial", takes_lambda=True,
                                         multiclass=True),
}


def register_method(name: str, spec: MethodSpec) -> None:
    """Add a method (or replace one) under ``name``."""
    METHODS[name] = spec


def method_spec(name: str) -> MethodSpec:
    """A registered method; a ``ConfigError`` naming the known ones for any other name."""
    if name not in METHODS:
        raise ConfigError(f"unknown training method {name!r} (--method); known: {', '.join(METHODS)}")
    return METHODS[name]


def result_name(method: str, lam: float) -> str:
    """A trained result's file-name-safe label: the method, with its lambda where it takes one ('adversarial_lam30')."""
    return f"{method}_lam{lam:g}" if method_spec(method).takes_lambda else method
