"""Pass criteria in a protocol's header: the clause an abuse test is judged to, and what must hold.

    criteria:
      clause: GB/T 31485-2015 §6.2.8
      pass:
        - not_seen: [fire]                # judged by the operator's observation
        - not_seen: explosion
        - temperature_max: 170 °C         # the cell's peak temperature (T3), measured
        - observed: 1 h                   # recorded this long after the short (or the start)
          text: observed 1 h with the nail in

Each criterion has one of ``not_seen``, ``temperature_max`` or ``observed``, and may say its own
``text`` (else one is made).  An empty ``pass`` list judges nothing: the EUCAR level is reported.
The run file keeps :meth:`Criteria.record` (JSON in ``/meta/protocol``, key ``criteria``), the
form :func:`cellrig.analysis.safety.passes` judges; the test report quotes it.
"""

import json
from typing import Any

from pydantic import Field, field_validator, model_validator

from ..observations import OBSERVED
from .schema import Celsius, Model, Seconds


class Criterion(Model):
    not_seen: list[str] | None = None
    temperature_max: Celsius | None = None
    observed: Seconds | None = None
    text: str = ""

    @field_validator("not_seen", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("not_seen")
    @classmethod
    def _observable(cls, value: list[str] | None) -> list[str] | None:
        unknown = [v for v in value or () if v not in OBSERVED]
        if unknown or value == []:
            raise ValueError(f"{', '.join(unknown) or 'nothing'}: not_seen takes one or more of {', '.join(OBSERVED)}")
        return value

    @model_validator(mode="after")
    def _one(self) -> "Criterion":
        given = [k for k in ("not_seen", "temperature_max", "observed") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a criterion has one of not_seen, temperature_max, observed (got {given or 'none'})")
        return self

    def record(self) -> dict[str, Any]:
        if self.not_seen is not None:
            return {"kind": "not_seen", "seen": self.not_seen, "text": self.text or "no " + " or ".join(self.not_seen)}
        if self.temperature_max is not None:
            text = self.text or f"peak cell temperature ≤ {self.temperature_max:g} °C"
            return {"kind": "temperature_max", "value": self.temperature_max, "text": text}
        return {"kind": "observed", "value": self.observed, "text": self.text or f"observed {self.observed / 3600:g} h"}


class Criteria(Model):
    clause: str = Field(min_length=1)
    pass_: list[Criterion] = Field(alias="pass")

    def record(self) -> str:
        """The JSON the run file keeps and the analysis judges."""
        return json.dumps({"clause": self.clause, "pass": [c.record() for c in self.pass_]}, ensure_ascii=False)

    @property
    def needs_observation(self) -> bool:
        """Whether a criterion is judged by the operator's observation."""
        return any(c.not_seen for c in self.pass_)
