"""Everything pokazy keeps per account: meters, their zone ledgers, closes, recent outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from streams.domain.calendar import Period
from streams.domain.ledger import MeterLedger, ZoneLedger
from streams.domain.model import Meter, SubmissionOutcome
from streams.domain.zones import Zone


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account's state: the unit of the worker's table and of its changelog."""

    account_id: str
    meters: tuple[Meter, ...] = ()
    ledgers: dict[str, MeterLedger] = field(default_factory=dict)
    # The last period closed for the account: its readings are PERIOD_CLOSED from then on.
    closed_through: Period | None = None
    # The outcomes of the latest submissions, oldest first: a redelivered submission gets the
    # same outcome (and the same rows) again instead of being judged a second time.
    recent: tuple[SubmissionOutcome, ...] = ()

    def meter_on(self, day: date) -> Meter | None:
        """The meter active on a local date, if any."""
        for meter in reversed(self.meters):
            if meter.active_on(day):
                return meter
        return None

    @property
    def first_installed_on(self) -> date | None:
        return min((m.installed_on for m in self.meters), default=None)

    def recent_outcome(self, event_id: str) -> SubmissionOutcome | None:
        for outcome in self.recent:
            if outcome.event_id == event_id:
                return outcome
        return None

    def zone_ledger(self, meter_id: str, zone: Zone) -> ZoneLedger:
        ledger = self.ledgers.get(meter_id)
        return ledger.zone(zone) if ledger else ZoneLedger()

    def with_recent(self, recent: tuple[SubmissionOutcome, ...]) -> AccountState:
        return AccountState(self.account_id, self.meters, self.ledgers, self.closed_through, recent)

    def with_zone_ledger(self, meter_id: str, zone: Zone, ledger: ZoneLedger) -> AccountState:
        meter_ledger = self.ledgers.get(meter_id) or MeterLedger(meter_id)
        zones = {**meter_ledger.zones, zone: ledger}
        ledgers = {**self.ledgers, meter_id: MeterLedger(meter_id, zones)}
        return AccountState(self.account_id, self.meters, ledgers, self.closed_through, self.recent)
