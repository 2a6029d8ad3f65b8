"""The names of the masks a clinician asks for: one enum for every command, the app, the API and
training. Only the standard library, so the command line can list the choices without loading
OpenCV; the masks themselves are drawn in `inclg.data.masks`."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from inclg.errors import DataError

# Landmark regions beyond the clinical kinds, for `inclg data gen-masks` (makeup and
# plastic-surgery previews); `inclg.data.masks.REGION_MASKS` draws them.
EXTRA_KINDS: tuple[str, ...] = ("eyebrows", "eyes")


class MaskKind(StrEnum):
    """The landmark-drawn regions a clinician asks for; one name everywhere (CLI, app, API,
    training). Left and right are the *subject's* sides: a cleft-left mask lies on the image's
    right in an unmirrored photo."""

    LIP = "lip"  # both lips, the region the paper inpaints
    CLEFT_LEFT = "cleft-left"  # unilateral cleft of the subject's left upper lip
    CLEFT_RIGHT = "cleft-right"
    CLEFT_BILATERAL = "cleft-bilateral"  # both sides and the base of the columella
    NOSE = "nose"

    @classmethod
    def parse(cls, value: str | MaskKind, what: str = "mask kind",
              extra: Sequence[str] = ()) -> MaskKind:
        """`value` as a `MaskKind`; an unknown or retired name raises `DataError` with the choices
        (`extra`: other names the caller accepts) or the new name. `what` names the setting in
        the message ("automatic mask", ...)."""
        if isinstance(value, MaskKind):
            return value
        try:
            return cls(value)
        except ValueError:
            pass
        renamed = RENAMED_KINDS.get(str(value).strip().lower())
        if renamed is not None:
            raise DataError(f"{what} {value!r} is now called {renamed.value!r}; use "
                            f"{renamed.value}") from None
        choices = [*(k.value for k in cls), *extra]
        raise DataError(f"unknown {what} {value!r}; choose one of {', '.join(choices)}") from None

    @property
    def cleft_side(self) -> str | None:
        """"left", "right" or "bilateral" for the cleft kinds, else None."""
        return self.value.removeprefix("cleft-") if self.value.startswith("cleft-") else None


# Names used before the one enum: refused with a hint naming the new one.
RENAMED_KINDS: dict[str, MaskKind] = {
    "cleft-both": MaskKind.CLEFT_BILATERAL,
    "cleft_both": MaskKind.CLEFT_BILATERAL,
    "bilateral": MaskKind.CLEFT_BILATERAL,
    "both": MaskKind.CLEFT_BILATERAL,
    "cleft_bilateral": MaskKind.CLEFT_BILATERAL,
    "cleft-l": MaskKind.CLEFT_LEFT,
    "cleft_left": MaskKind.CLEFT_LEFT,
    "cleft-r": MaskKind.CLEFT_RIGHT,
    "cleft_right": MaskKind.CLEFT_RIGHT,
    "lips": MaskKind.LIP,
    "mouth": MaskKind.LIP,
}


__all__ = ["EXTRA_KINDS", "RENAMED_KINDS", "MaskKind"]
