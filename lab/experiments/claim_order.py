"""The claims' order of before December 2026, still accepted where it cannot be mistaken for today's.

Claims took what was observed first and the description later
(``count(packets, 2, "two ARP frames")``); today the description comes first.
An experiment written from the older guide still runs: :func:`packets_first_accepted`
binds such a call to the old signature, warns once per claim (:class:`OldClaimOrder`,
shown, not hidden as DeprecationWarnings are outside ``__main__``), and calls the claim.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast


class OldClaimOrder(DeprecationWarning):
    """A claim called in its order of before December 2026: what was observed first, the description later."""


warnings.filterwarnings("once", category=OldClaimOrder)  # shown once per claim, not hidden as deprecations are
Claim = TypeVar("Claim", bound=Callable[..., Any])


def packets_first_accepted(old: Callable[..., None]) -> Callable[[Claim], Claim]:
    """Let a claim also take its old order, ``old``'s parameters (packets first), with one OldClaimOrder warning.

    Only where the old call cannot be mistaken for the new: its first argument is a list of packets
    (or times), never a string. A call with strings only (``output_contains``) has no such tell: it is
    read in today's order, and a claim given a non-string description refuses it (TypeError).
    """
    old_signature = inspect.signature(old)

    def accepting_old(claim: Claim) -> Claim:
        @functools.wraps(claim)
        def either(*args: Any, **kwargs: Any) -> Any:
            if not args or isinstance(args[0], str) or not isinstance(args[0], Sequence):
                return claim(*args, **kwargs)
            try:
                bound = old_signature.bind(*args, **kwargs)
            except TypeError:
                return claim(*args, **kwargs)  # neither order: the claim's own refusal says what it takes
            bound.apply_defaults()
            name = claim.__name__
            warnings.warn(f"expect.{name}({', '.join(old_signature.parameters)}) is the old order; call "
                          f"expect.{name}(description, ...) with the description first", OldClaimOrder, stacklevel=2)
            return claim(**bound.arguments)

        return cast(Claim, either)

    return accepting_old
