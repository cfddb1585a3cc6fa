"""Steps on no instrument of their own: ``wait``, ``observe`` (every stream keeps recording) and ``note``."""

from ._step import Activity, Step, StepContext


class Note(Step):
    text: str


class Timed(Activity):
    """``wait`` and ``observe``: every stream keeps recording for the duration."""

    def done(self, r: StepContext) -> bool:
        return self.running_for(r) >= self.spec.duration


class Noting(Activity):
    def begin(self, r: StepContext) -> None:
        r.event("note", self.spec.text)
