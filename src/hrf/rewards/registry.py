"""The reward registry, the ``module:function`` convention for user rewards, and the checks on every output.

A user reward ``module:function`` is one of two things:

- a factory, ``function(**reward.options) -> reward``, called once when the run starts: every class (its
  instance is the reward, whatever its constructor asks; a required argument missing from
  ``reward.options`` is a one-line error naming it), and every function whose first parameter is optional,
  keyword-only, named in ``reward.options`` or absent (e.g. ``def make(scale=1.0)``);
- the reward itself, ``function(images) -> rewards or (rewards, info)``: any other function, i.e. one whose
  first parameter is required, positional and not named in ``reward.options``, so it receives the images.

Every reward :func:`make_reward` returns turns a failure inside it (an exception, an output of the wrong
type or shape) into a one-line :class:`HrfError` naming the reward and the cause.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
from collections.abc import Callable
from typing import Protocol

import torch

from hrf.errors import HrfError


class RewardFn(Protocol):
    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, dict]: ...


REWARDS: dict[str, Callable[..., RewardFn]] = {}


def register_reward(name: str):
    """Decorator: register a factory ``(**options) -> RewardFn`` under ``name``."""

    def deco(factory):
        REWARDS[name] = factory
        return factory

    return deco


def _cause(exc: BaseException) -> str:
    """``Type: first line of the message``: a cause that fits on the error's one line."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _origin(module_name: str) -> str:
    """`` (from FILE)`` for a module found on the path, so an error names the file to fix; else nothing."""
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return ""
    return f" (from {spec.origin})" if spec is not None and spec.origin and spec.has_location else ""


def _import_user_reward(spec: str) -> Callable:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise HrfError(
            f"reward '{spec}': cannot import module '{module_name}'{_origin(module_name)} ({_cause(exc)})"
        ) from exc
    if not hasattr(module, attr):
        raise HrfError(f"reward '{spec}': module '{module_name}'{_origin(module_name)} has no attribute '{attr}'")
    obj = getattr(module, attr)
    if not callable(obj):
        raise HrfError(f"reward '{spec}' is not a function (it is of type {type(obj).__name__})")
    return obj


def takes_images(fn: Callable, options: dict) -> bool:
    """True when ``fn`` is a reward itself: not a class, and its first parameter is required, positional and not
    an option."""
    if inspect.isclass(fn):
        return False
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: take them as the reward itself
        return True
    if not params:
        return False
    first = params[0]
    if first.kind is inspect.Parameter.VAR_POSITIONAL:
        return True
    return (
        first.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and first.default is inspect.Parameter.empty
        and first.name not in options
    )


def _build(name: str, factory: Callable, options: dict) -> Callable:
    """Call a reward factory with ``options`` as keywords; a misfit option or any failure is one line."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # no signature to check against: the call below reports a misfit
        signature = None
    if signature is not None:
        try:
            signature.bind(**options)
        except TypeError as exc:
            accepted = ", ".join(signature.parameters) or "none"
            raise HrfError(
                f"reward '{name}': reward.options do not fit its factory ({exc}); its options: {accepted}"
            ) from exc
    try:
        fn = factory(**options)
    except HrfError:
        raise
    except Exception as exc:
        raise HrfError(f"reward '{name}': building it raised {_cause(exc)}") from exc
    if not callable(fn):
        raise HrfError(f"reward '{name}': the factory returned a {type(fn).__name__}, not a function of the images")
    return fn


def with_default_device(factory: Callable, options: dict, device: torch.device | str | None) -> dict:
    """``options`` plus ``device=str(device)`` when the factory takes a ``device`` parameter and the options
    do not name one: rewards run where the model runs unless the user says otherwise."""
    if device is None or "device" in options:
        return options
    try:
        takes = "device" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes = False
    return options | {"device": str(device)} if takes else options


def make_reward(name: str, default_device: torch.device | str | None = None, **options) -> RewardFn:
    """Build the reward ``name``: registered, or ``module:function`` (a reward or a factory, see the module doc).

    A factory with a ``device`` parameter gets ``default_device`` (the device of the model being scored)
    unless ``options`` set ``device``.
    """
    if ":" in name:
        obj = _import_user_reward(name)
        if takes_images(obj, options):
            if options:
                raise HrfError(
                    f"reward '{name}' takes the images as its first parameter, so it takes no "
                    f"reward.options ({', '.join(options)}); to take options, make it a factory "
                    "def f(**options) that returns the reward"
                )
            fn = obj
        else:
            fn = _build(name, obj, with_default_device(obj, options, default_device))
    elif name in REWARDS:
        fn = _build(name, REWARDS[name], with_default_device(REWARDS[name], options, default_device))
    else:
        close = difflib.get_close_matches(name, REWARDS, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise HrfError(f"unknown reward '{name}'{hint}; registered: {', '.join(sorted(REWARDS))}, or module:function")
    return checked_reward(name, fn)


def checked_reward(name: str, fn: Callable) -> RewardFn:
    """``fn`` returning ``(rewards (N,) float32 on the CPU, info dict)``; its failures become one-line HrfErrors."""

    def reward(images: torch.Tensor) -> tuple[torch.Tensor, dict]:
        try:
            out = fn(images)
        except HrfError:
            raise
        except Exception as exc:
            raise HrfError(f"reward '{name}' raised {_cause(exc)}") from exc
        info: object = {}
        if isinstance(out, tuple):
            if len(out) != 2:
                raise HrfError(f"reward '{name}' returned a tuple of {len(out)}; return rewards or (rewards, info)")
            out, info = out
        if not isinstance(info, dict):
            raise HrfError(f"reward '{name}' returned a {type(info).__name__} as its info; it must be a dict")
        return validate_rewards(out, len(images), f"reward '{name}'"), info

    return reward


def validate_rewards(rewards, n: int, name: str = "reward") -> torch.Tensor:
    """Check a reward output: numbers of shape (n,), as float32 on the CPU. Non-finite values pass (see callers)."""
    if isinstance(rewards, tuple):
        rewards = rewards[0]
    try:
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise HrfError(
            f"{name} returned {type(rewards).__name__}, not numbers; it must return a float tensor of shape ({n},)"
        ) from exc
    if rewards.shape != (n,):
        raise HrfError(f"{name} returned shape {tuple(rewards.shape)} for {n} images; it must return shape ({n},)")
    return rewards.detach().cpu()
