"""Client quotas, pure parts: the windowed rate and throttle time (Kafka's Rate and
QuotaUtils.throttleTime), KIP-55 precedence with its sharing, the manager, the image and delta
of ClientQuotaRecords, DescribeClientQuotas' filter, and the controller's AlterClientQuotas."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from broker.network.connection import CLOSE
from broker.protocol.framing import RequestHeader
from broker.protocol.messages import fetch, produce
from broker.quotas.enforce import ClientQuotas
from broker.quotas.manager import QuotaManager
from broker.quotas.mutations import MutationQuotas
from broker.quotas.rate import WindowedRate
from broker.quotas.resolve import QuotaKeyIndex
from broker.security.principal import ANONYMOUS
from kraft.client_quotas import (
    CLIENT_ID,
    MATCH_DEFAULT,
    MATCH_EXACT,
    MATCH_SPECIFIED,
    USER,
    ClientQuotasDelta,
    ClientQuotasImage,
    QuotaFilterError,
    entity_of,
)
from kraft.controller.client_quota_control import (
    AlterClientQuotasRequest,
    ClientQuotaAlteration,
    alter_client_quotas,
)
from kraft.delta import MetadataDelta
from kraft.image import MetadataImage
from kraft.metadata_records import (
    ClientQuotaRecord,
    MetadataRecordType,
    decode_metadata_record,
    encode_metadata_record,
)
from storage.error_codes import ErrorCode

# -- the rate ---------------------------------------------------------------------------------


def test_rate_is_measured_over_at_least_samples_minus_one_windows() -> None:
    r = WindowedRate(11, 1000, now_ms=0)
    r.record(10_000, 0)
    # One burst at t=0: measured over 10 full windows, not over 0 ms.
    assert r.window_size_ms(0) == 10_000
    assert r.rate(0) == pytest.approx(1000.0)
    # 15 s later the elapsed time dominates... but the old window expired (11 s): empty.
    assert r.rate(15_000) == 0.0


def test_rate_advances_windows_and_expires_old_ones() -> None:
    r = WindowedRate(3, 1000, now_ms=0)
    for t in range(0, 3000, 100):
        r.record(100, t)  # 1000 per second
    # Windows start at 0, 1000, 2000; measured at 3000 over 3000 ms.
    assert r.rate(3000) == pytest.approx(3000 * 1000 / 3000)
    # At 3500 the window of t=0 has expired (3 windows of 1 s): it is reset and restarts at
    # 3500, so the oldest start is 1000, 2500 ms elapsed (at least 2 full windows).
    assert r.rate(3500) == pytest.approx(2000 * 1000 / 2500)


def test_throttle_time_is_kafkas_formula() -> None:
    r = WindowedRate(11, 1000, now_ms=0)
    r.record(30_000, 0)  # observed 3000/s over 10 s against a bound of 1000/s
    # X = (O - T) / T * W = (3000 - 1000) / 1000 * 10000
    assert r.throttle_ms(1000.0, 0) == 20_000
    assert r.throttle_ms(3000.0, 0) == 0
    assert r.throttle_ms(5000.0, 0) == 0


# -- precedence -------------------------------------------------------------------------------

def _image(*entries: tuple[tuple[tuple[str, str | None], ...], dict[str, float]]
           ) -> ClientQuotasImage:
    return ClientQuotasImage({entity_of(e): v for e, v in entries})


ALL_LEVELS = [
    (((USER, "u"), (CLIENT_ID, "c")), 1.0),
    (((USER, "u"), (CLIENT_ID, None)), 2.0),
    (((USER, "u"),), 3.0),
    (((USER, None), (CLIENT_ID, "c")), 4.0),
    (((USER, None), (CLIENT_ID, None)), 5.0),
    (((USER, None),), 6.0),
    (((CLIENT_ID, "c"),), 7.0),
    (((CLIENT_ID, None),), 8.0),
]
EXPECTED_TAGS = [("u", "c"), ("u", "c"), ("u", ""), ("u", "c"), ("u", "c"), ("u", ""),
                 ("", "c"), ("", "c")]


@pytest.mark.parametrize("level", range(8))
def test_kip55_precedence_each_level_beats_the_ones_below(level: int) -> None:
    image = _image(*[(e, {"producer_byte_rate": v}) for e, v in ALL_LEVELS[level:]])
    index = QuotaKeyIndex(image, "producer_byte_rate")
    assert index.resolve("u", "c") == (ALL_LEVELS[level][1], EXPECTED_TAGS[level])


def test_no_quota_resolves_to_none_and_other_keys_do_not_count() -> None:
    image = _image((((USER, "u"),), {"consumer_byte_rate": 5.0}))
    index = QuotaKeyIndex(image, "producer_byte_rate")
    assert not index
    assert index.resolve("u", "c") is None
    assert QuotaKeyIndex(image, "consumer_byte_rate").resolve("other", "c") is None


def test_manager_shares_a_user_quota_across_client_ids_and_splits_client_defaults() -> None:
    m = QuotaManager("producer_byte_rate", samples=2, window_ms=1000)
    m.update(_image((((USER, "u"),), {"producer_byte_rate": 100.0}),
                    (((CLIENT_ID, None),), {"producer_byte_rate": 100.0})))
    assert m.active
    assert m.record("u", "a", 100, 0) == 0  # 100 over the minimum 1 s window: at the bound
    assert m.record("u", "b", 100, 0) > 0  # same user meter: 200/s
    # Client-id default: each client id has its own meter.
    assert m.record("v", "a", 100, 0) == 0
    assert m.record("v", "b", 100, 0) == 0
    assert m.record("v", "a", 50, 0) > 0


def test_manager_unrecord_and_window_cap_and_live_update() -> None:
    m = QuotaManager("consumer_byte_rate", samples=11, window_ms=1000)
    assert not m.active and m.record("u", "c", 10**9, 0) == 0
    m.update(_image((((CLIENT_ID, "c"),), {"consumer_byte_rate": 1000.0})))
    assert m.max_value_in_window("u", "c") == 10_000
    assert m.max_value_in_window("u", "other") is None
    assert m.record("u", "c", 20_000, 0) == 10_000
    m.unrecord("u", "c", 20_000, 0)
    assert m.throttle_ms("u", "c", 0) == 0
    m.update(ClientQuotasImage())
    assert not m.active and m.record("u", "c", 10**9, 0) == 0


# -- records, image, delta, describe -----------------------------------------------------------

def _record(entity: tuple[tuple[str, str | None], ...], key: str, value: float,
            remove: bool = False) -> ClientQuotaRecord:
    return ClientQuotaRecord(
        entity=[ClientQuotaRecord.EntityData(entity_type=t, entity_name=n) for t, n in entity],
        key=key, value=value, remove=remove)


def test_client_quota_record_round_trips_and_replays_into_the_image() -> None:
    rec = _record(((USER, None), (CLIENT_ID, "c")), "producer_byte_rate", 1024.0)
    data = encode_metadata_record(MetadataRecordType.CLIENT_QUOTA_RECORD, 0, rec)
    rtype, version, back = decode_metadata_record(data)
    assert (rtype, version, back) == (MetadataRecordType.CLIENT_QUOTA_RECORD, 0, rec)
    delta = MetadataDelta(MetadataImage())
    delta.replay(rtype, back)
    delta.replay(rtype, _record(((CLIENT_ID, "c"),), "consumer_byte_rate", 5.0))
    assert delta.client_quotas_changed()
    image = delta.apply()
    assert image.client_quotas.entities == {
        ((CLIENT_ID, "c"), (USER, None)): {"producer_byte_rate": 1024.0},
        ((CLIENT_ID, "c"),): {"consumer_byte_rate": 5.0},
    }
    assert not image.is_empty()
    # The snapshot's records rebuild the same image.
    again = MetadataDelta(MetadataImage())
    again.replay_all(list(image.records()))
    assert again.apply().client_quotas == image.client_quotas
    # Removing the last key drops the entity.
    d2 = MetadataDelta(image)
    d2.replay(rtype, _record(((CLIENT_ID, "c"),), "consumer_byte_rate", 0.0, remove=True))
    assert list(d2.apply().client_quotas.entities) == [((CLIENT_ID, "c"), (USER, None))]


def test_describe_filters_like_kafka() -> None:
    d = ClientQuotasDelta(ClientQuotasImage())
    for entity in (((USER, "u"),), ((USER, None),), ((USER, "u"), (CLIENT_ID, "c")),
                   ((CLIENT_ID, "c"),)):
        d.replay(_record(entity, "producer_byte_rate", 1.0))
    img = d.apply()

    def names(components: list[tuple[str, int, str | None]], strict: bool) -> list[object]:
        return [e for e, _ in img.describe(components, strict)]

    assert names([(USER, MATCH_EXACT, "u")], False) == [
        ((CLIENT_ID, "c"), (USER, "u")), ((USER, "u"),)]
    assert names([(USER, MATCH_EXACT, "u")], True) == [((USER, "u"),)]
    assert names([(USER, MATCH_DEFAULT, None)], True) == [((USER, None),)]
    assert len(names([(USER, MATCH_SPECIFIED, None)], True)) == 2
    assert len(names([], False)) == 4
    with pytest.raises(QuotaFilterError):
        img.describe([(USER, MATCH_EXACT, "u"), (USER, MATCH_DEFAULT, None)], False)
    with pytest.raises(QuotaFilterError):
        img.describe([("ip", MATCH_DEFAULT, None), (USER, MATCH_DEFAULT, None)], False)
    with pytest.raises(QuotaFilterError):
        img.describe([("nope", MATCH_DEFAULT, None)], False)


# -- the controller ---------------------------------------------------------------------------

def _alter(image: MetadataImage, *entries: ClientQuotaAlteration,
           validate_only: bool = False) -> tuple[MetadataImage, list[ErrorCode]]:
    result = alter_client_quotas(image, AlterClientQuotasRequest(entries, validate_only))
    delta = MetadataDelta(image)
    delta.replay_all(result.records)
    return delta.apply(), [code for code, _ in result.response.results]


def test_controller_alters_removes_and_skips_unchanged_values() -> None:
    u = ((USER, "alice"),)
    image, codes = _alter(MetadataImage(), ClientQuotaAlteration(
        u, (("producer_byte_rate", 1000.0, False), ("request_percentage", 12.5, False))))
    assert codes == [ErrorCode.NONE]
    assert image.client_quotas.entities[u] == {"producer_byte_rate": 1000.0,
                                               "request_percentage": 12.5}
    same = alter_client_quotas(image, AlterClientQuotasRequest((ClientQuotaAlteration(
        u, (("producer_byte_rate", 1000.0, False), ("consumer_byte_rate", 0, True))),)))
    assert same.records == []  # nothing changes, nothing is written
    image, codes = _alter(image, ClientQuotaAlteration(
        u, (("producer_byte_rate", 0, True), ("request_percentage", 0, True))))
    assert codes == [ErrorCode.NONE] and not image.client_quotas.entities
    image, codes = _alter(image, ClientQuotaAlteration(
        u, (("producer_byte_rate", 5.0, False),)), validate_only=True)
    assert codes == [ErrorCode.NONE] and not image.client_quotas.entities


@pytest.mark.parametrize("entity,ops", [
    ((), (("producer_byte_rate", 1.0, False),)),
    (((USER, "u"), (USER, "v")), (("producer_byte_rate", 1.0, False),)),
    ((("group", "g"),), (("producer_byte_rate", 1.0, False),)),
    (((USER, ""),), (("producer_byte_rate", 1.0, False),)),
    (((USER, "u"),), (("no_such_key", 1.0, False),)),
    (((USER, "u"),), (("producer_byte_rate", 1.5, False),)),  # a LONG key
    (((USER, "u"),), (("producer_byte_rate", -1.0, False),)),
    (((USER, "u"),), (("producer_byte_rate", 1.0, False), ("producer_byte_rate", 2.0, False))),
    ((("ip", "1.2.3.4"), (USER, "u")), (("connection_creation_rate", 1.0, False),)),
    ((("ip", "1.2.3.4"),), (("producer_byte_rate", 1.0, False),)),
    ((("ip", "not an ip"),), (("connection_creation_rate", 1.0, False),)),
])
def test_controller_refuses_what_kafka_refuses(
        entity: tuple[tuple[str, str | None], ...],
        ops: tuple[tuple[str, float, bool], ...]) -> None:
    good = ClientQuotaAlteration(((CLIENT_ID, "ok"),), (("consumer_byte_rate", 10.0, False),))
    image, codes = _alter(MetadataImage(), ClientQuotaAlteration(entity, ops), good)
    assert codes == [ErrorCode.INVALID_REQUEST, ErrorCode.NONE]
    assert list(image.client_quotas.entities) == [((CLIENT_ID, "ok"),)]


# -- controller_mutation_rate (KIP-599) -------------------------------------------------------

def _mutations(rate: float, samples: int = 10) -> MutationQuotas:
    m = MutationQuotas(lambda: MetadataImage(), default_partitions=1, samples=samples)
    m.update(_image((((CLIENT_ID, "admin"),), {"controller_mutation_rate": rate})))
    return m


def test_strict_mutation_quota_is_kafkas_token_bucket() -> None:
    """Kafka's StrictControllerMutationQuotaTest: quota 10/s over 10 windows of 1 s."""
    m = _mutations(10.0)
    assert m.active
    assert m.admit("u", "admin", [90], strict=True, now_ms=0) == ([True], 0)  # 100 -> 10
    # Accepted while the bucket is not below zero, whatever it costs: 10 -> -80.
    assert m.admit("u", "admin", [90], strict=True, now_ms=0) == ([True], 8000)
    # Refused now, with the time to refill to zero.
    assert m.admit("u", "admin", [1], strict=True, now_ms=0) == ([False], 8000)
    # 8 s later the bucket is back at zero: accepted again.
    assert m.admit("u", "admin", [1, 5], strict=True, now_ms=8000) == ([True, False], 100)
    # Other clients have no quota.
    assert m.admit("u", "other", [1000], strict=True, now_ms=8000) == ([True], 0)


def test_permissive_mutation_quota_accepts_and_throttles() -> None:
    m = _mutations(2.0, samples=11)  # a burst of 22
    assert m.admit("u", "admin", [20, 12], strict=False, now_ms=0) == ([True, True], 5000)
    assert m.admit("u", "admin", [1], strict=False, now_ms=1000) == ([True], 4500)


# -- the hooks around the handlers -------------------------------------------------------------

class _Conn:
    def __init__(self) -> None:
        self.principal = ANONYMOUS
        self.mute_until = 0.0
        self.listener_kind = "broker"


class _Ctx:
    def __init__(self, size: int) -> None:
        self.connection = _Conn()
        self.frame = b"x" * size


def _quotas(**values: float) -> tuple[ClientQuotas, list[float]]:
    now = [100.0]
    q = ClientQuotas(samples=11, window_s=1, clock=lambda: now[0])
    image = MetadataImage(client_quotas=_image((((CLIENT_ID, "c"),), dict(values))))
    q.on_metadata(None, image)
    return q, now


def test_produce_hook_throttles_mutes_and_leaves_others_alone() -> None:
    q, _now = _quotas(producer_byte_rate=1000.0)
    P = produce.RESPONSE
    handler = lambda ctx, header, req: P.cls(throttle_time_ms=0, responses=[])
    wrapped = q.wrap_produce(handler)
    ctx = _Ctx(10_000)  # 10 KB at 1 KB/s over 10 s: at the bound
    assert wrapped(ctx, RequestHeader(0, 9, 1, "c", 2), None).throttle_time_ms == 0
    assert ctx.connection.mute_until == 0.0
    ctx = _Ctx(5_000)  # now 15 KB: 5 s over
    assert wrapped(ctx, RequestHeader(0, 9, 2, "c", 2), None).throttle_time_ms == 5000
    assert ctx.connection.mute_until == pytest.approx(105.0)
    other = _Ctx(10**6)
    assert wrapped(other, RequestHeader(0, 9, 3, "free", 2), None).throttle_time_ms == 0
    # acks=0 (no response) and a closing answer carry no throttle time; the mute still holds.
    none_ctx = _Ctx(5_000)
    assert q.wrap_produce(lambda *a: None)(none_ctx, RequestHeader(0, 9, 4, "c", 2), None) is None
    assert none_ctx.connection.mute_until > 100.0
    assert q.wrap_produce(lambda *a: CLOSE)(_Ctx(1), RequestHeader(0, 9, 5, "c", 2), None) is CLOSE
    # Produce v5 does not throttle itself: the answer comes after the throttle time instead.
    late = wrapped(_Ctx(1), RequestHeader(0, 5, 6, "c", 2), None)
    assert inspect.isawaitable(late)
    late.close()


def test_fetch_hook_answers_a_throttled_consumer_without_records() -> None:
    q, _ = _quotas(consumer_byte_rate=100.0)
    F = fetch.RESPONSE
    R = fetch.REQUEST

    def handler(ctx: Any, header: Any, req: Any) -> Any:
        part = F.PartitionData(partition_index=0, error_code=0, high_watermark=10,
                               records=b"r" * 800)
        return F.cls(throttle_time_ms=0, error_code=0, session_id=0, responses=[
            F.FetchableTopicResponse(topic="t", partitions=[part])])

    wrapped = q.wrap_fetch(handler)
    req = R.cls(replica_id=-1, max_wait_ms=0, min_bytes=1, max_bytes=10**6, topics=[])
    first = wrapped(_Ctx(50), RequestHeader(1, 11, 1, "c", 2), req)
    assert req.max_bytes == 1000  # capped at the quota over its window (10 s)
    assert first.throttle_time_ms == 0 and first.responses[0].partitions[0].records
    second = wrapped(_Ctx(50), RequestHeader(1, 11, 2, "c", 2), req)
    assert second.throttle_time_ms > 0
    assert second.responses[0].partitions[0].records == b""
    # The withheld bytes were taken back: only the first 800 count.
    assert q.fetch.throttle_ms("ANONYMOUS", "c", 100_000.0) == 0
    follower = R.cls(replica_id=2, max_wait_ms=0, min_bytes=1, max_bytes=10**6, topics=[])
    assert wrapped(_Ctx(50), RequestHeader(1, 11, 3, "c", 2), follower).throttle_time_ms == 0
