"""Leader election on a `coordination.k8s.io/v1` Lease: one acting replica at a time.

kopf's peering pauses operators by priority and freezes replicas of equal priority, so it
cannot give a hot standby. Here each replica tries to take the Lease (compare-and-swap on
its resourceVersion); the holder renews it every `renew` seconds, a standby retries at the
same pace and takes over once the holder has not renewed for a whole lease duration. A
leader that cannot renew before its own Lease would expire stops acting (the caller
stops kopf and exits) rather than risk two active replicas; on a clean shutdown it
releases the Lease so a standby takes over at once. Duplicate pushes are prevented
independently: a new leader plans from the agents' reported state and `Stat`.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Callable

from kubernetes_asyncio import client

from edgewave_api.errors import EdgewaveError
from edgewave_operator.kube import failures, leases
from edgewave_operator.planning import leadership

log = logging.getLogger(__name__)
Clock = Callable[[], datetime.datetime]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class LeaderElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        duration: float,
        renew: float,
        clock: Clock = _utcnow,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._duration = datetime.timedelta(seconds=duration)
        self._renew = renew
        self._clock = clock
        self._record: leases.LeaseRecord | None = None
        self._last_renewal: datetime.datetime | None = None

    async def try_take(self) -> bool:
        """One attempt to take or renew the Lease; True if this replica holds it now."""
        now = self._clock()
        current = await leases.read(self._api, namespace=self._namespace, name=self._name)
        if current is not None and not leadership.may_take(
            holder=current.holder,
            renewed_at=current.renewed_at,
            duration=self._duration,
            identity=self.identity,
            now=now,
        ):
            return False
        try:
            self._record = await leases.write(
                self._api,
                namespace=self._namespace,
                name=self._name,
                holder=self.identity,
                duration_seconds=max(1, round(self._duration.total_seconds())),
                now=now,
                previous=current,
            )
        except failures.Conflict:
            return False
        self._last_renewal = now
        return True

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        announced = False
        while True:
            try:
                if await self.try_take():
                    log.info(
                        "leader: %s holds Lease %s/%s", self.identity, self._namespace, self._name
                    )
                    return
            except EdgewaveError as error:
                log.warning("leader election: %s", error)
            if not announced:
                log.info(
                    "leader: standing by; another replica holds Lease %s/%s",
                    self._namespace,
                    self._name,
                )
                announced = True
            await asyncio.sleep(self._renew)

    async def hold(self, lost: asyncio.Event) -> None:
        """Renew until cancelled; set `lost` (and return) if leadership cannot be kept."""
        while True:
            await asyncio.sleep(self._renew)
            try:
                if await self.try_take():
                    continue
                log.error("leader: another replica took Lease %s/%s", self._namespace, self._name)
            except EdgewaveError as error:
                last = self._last_renewal or self._clock()
                # Stop acting before the Lease could be taken by a standby.
                if self._clock() + datetime.timedelta(seconds=self._renew) < last + self._duration:
                    log.warning("leader: renewal failed (%s); retrying", error)
                    continue
                log.error("leader: cannot renew Lease before it expires: %s", error)
            lost.set()
            return

    async def release(self) -> None:
        """Give the Lease up (clean shutdown), so a standby takes over without waiting."""
        if self._record is None:
            return
        try:
            current = await leases.read(self._api, namespace=self._namespace, name=self._name)
            if current is None or current.holder != self.identity:
                return
            expired = self._clock() - self._duration - datetime.timedelta(seconds=1)
            await leases.write(
                self._api,
                namespace=self._namespace,
                name=self._name,
                holder="",
                duration_seconds=max(1, round(self._duration.total_seconds())),
                now=expired,
                previous=current,
            )
        except EdgewaveError as error:
            log.warning("leader: could not release the Lease: %s", error)
