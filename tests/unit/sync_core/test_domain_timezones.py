"""R33: Graph dateTimeTimeZone ↔ UTC, Windows and IANA names, exact across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_core.domain.errors import MappingError
from sync_core.domain.timezones import (
    UnknownTimeZone,
    floating_midnight,
    from_utc,
    local_date,
    parse_date_time,
    to_utc,
    windows_name,
    zone,
)

ZONES = [
    "UTC",
    "W. Europe Standard Time",
    "Romance Standard Time",
    "GMT Standard Time",
    "Pacific Standard Time",
    "Eastern Standard Time",
    "AUS Eastern Standard Time",
    "India Standard Time",
    "Europe/Paris",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kathmandu",
]


def test_windows_zone_name_converts_to_utc_R33() -> None:
    # Winter: W. Europe is UTC+1.
    assert to_utc("2024-01-15T09:00:00.0000000", "W. Europe Standard Time") == datetime(2024, 1, 15, 8, tzinfo=UTC)
    # Summer: UTC+2.
    assert to_utc("2024-07-15T09:00:00.0000000", "W. Europe Standard Time") == datetime(2024, 7, 15, 7, tzinfo=UTC)


def test_iana_zone_name_converts_to_utc_R33() -> None:
    assert to_utc("2024-07-15T09:00:00", "America/New_York") == datetime(2024, 7, 15, 13, tzinfo=UTC)
    assert to_utc("2024-07-15T09:00:00", "Asia/Kathmandu") == datetime(2024, 7, 15, 3, 15, tzinfo=UTC)


def test_windows_names_are_case_insensitive_R33() -> None:
    assert to_utc("2024-01-15T09:00:00", "w. europe standard time") == datetime(2024, 1, 15, 8, tzinfo=UTC)


@pytest.mark.parametrize("name", ["UTC", "utc", "Etc/UTC", "tzone://Microsoft/Utc", "", None])
def test_utc_spellings_are_utc_R33(name: str | None) -> None:
    assert to_utc("2024-01-15T09:00:00", name) == datetime(2024, 1, 15, 9, tzinfo=UTC)


def test_dst_start_day_converts_each_side_exactly_R33() -> None:
    # Europe springs forward on 2024-03-31 at 02:00 local (01:00 UTC).
    tz = "W. Europe Standard Time"
    assert to_utc("2024-03-31T01:30:00", tz) == datetime(2024, 3, 31, 0, 30, tzinfo=UTC)
    assert to_utc("2024-03-31T03:30:00", tz) == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    # A meeting 01:30 → 03:30 local across the change lasts one hour, not two.
    assert to_utc("2024-03-31T03:30:00", tz) - to_utc("2024-03-31T01:30:00", tz) == timedelta(hours=1)


def test_dst_end_day_converts_exactly_R33() -> None:
    # Europe falls back on 2024-10-27 at 03:00 local (01:00 UTC): 01:30 → 04:30 local lasts four hours.
    tz = "Romance Standard Time"
    assert to_utc("2024-10-27T04:30:00", tz) - to_utc("2024-10-27T01:30:00", tz) == timedelta(hours=4)


def test_repeated_hour_reads_as_the_first_occurrence_R33() -> None:
    # 02:30 happens twice on 2024-10-27 in Paris; the wall time alone is read with the summer offset.
    assert to_utc("2024-10-27T02:30:00", "Europe/Paris") == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)


def test_skipped_hour_reads_with_the_offset_before_the_change_R33() -> None:
    # 02:30 does not exist on 2024-03-31 in Paris; read with the winter offset (+1), as Exchange does.
    assert to_utc("2024-03-31T02:30:00", "Europe/Paris") == datetime(2024, 3, 31, 1, 30, tzinfo=UTC)


def test_southern_hemisphere_dst_R33() -> None:
    # Sydney is on daylight time (UTC+11) in January, standard (UTC+10) in July.
    assert to_utc("2024-01-10T10:00:00", "AUS Eastern Standard Time") == datetime(2024, 1, 9, 23, tzinfo=UTC)
    assert to_utc("2024-07-10T10:00:00", "AUS Eastern Standard Time") == datetime(2024, 7, 10, 0, tzinfo=UTC)


def test_seven_fractional_digits_are_read_R33() -> None:
    assert parse_date_time("2024-01-15T09:00:00.1234567") == datetime(2024, 1, 15, 9, 0, 0, 123456)
    assert parse_date_time("2024-01-15T09:00:00.5") == datetime(2024, 1, 15, 9, 0, 0, 500000)


def test_explicit_offset_in_date_time_wins_over_the_zone_name_R33() -> None:
    assert to_utc("2024-01-15T09:00:00Z", "Pacific Standard Time") == datetime(2024, 1, 15, 9, tzinfo=UTC)
    assert to_utc("2024-01-15T09:00:00+02:00", "UTC") == datetime(2024, 1, 15, 7, tzinfo=UTC)


def test_unknown_zone_is_a_mapping_error_R33() -> None:
    with pytest.raises(UnknownTimeZone) as err:
        to_utc("2024-01-15T09:00:00", "Mars Standard Time")
    assert isinstance(err.value, MappingError)
    assert "Mars Standard Time" in str(err.value)


def test_garbage_date_time_is_a_mapping_error_R33() -> None:
    with pytest.raises(MappingError):
        to_utc("next tuesday", "UTC")


def test_from_utc_writes_graph_wall_time_in_the_zone_R33() -> None:
    value = from_utc(datetime(2024, 7, 15, 7, 0, tzinfo=UTC), "W. Europe Standard Time")
    assert value == {"dateTime": "2024-07-15T09:00:00.0000000", "timeZone": "W. Europe Standard Time"}
    assert from_utc(datetime(2024, 7, 15, 7, 0, 0, 250000, tzinfo=UTC)) == {
        "dateTime": "2024-07-15T07:00:00.2500000",
        "timeZone": "UTC",
    }


def test_from_utc_refuses_naive_datetimes_R33() -> None:
    with pytest.raises(MappingError):
        from_utc(datetime(2024, 7, 15, 7, 0))


def test_all_day_boundaries_are_floating_R07() -> None:
    assert floating_midnight(date(2024, 5, 1), "Pacific Standard Time") == {
        "dateTime": "2024-05-01T00:00:00.0000000",
        "timeZone": "Pacific Standard Time",
    }
    assert local_date("2024-05-01T00:00:00.0000000") == date(2024, 5, 1)


def test_windows_name_of_iana_zone_R33() -> None:
    assert windows_name("Europe/Berlin") == "W. Europe Standard Time"
    assert windows_name("Nowhere/Atlantis") is None


def test_every_windows_zone_tzlocal_knows_is_resolvable_R33() -> None:
    from tzlocal.windows_tz import win_tz

    for name in win_tz:
        assert zone(name) is not None


@given(
    instant=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)),
    tz=st.sampled_from(ZONES),
)
def test_utc_to_any_zone_and_back_is_exact_outside_the_repeated_hour_R33(instant: datetime, tz: str) -> None:
    value = from_utc(instant, tz)
    local = parse_date_time(value["dateTime"]).replace(tzinfo=zone(tz))
    ambiguous = local.replace(fold=1).utcoffset() != local.utcoffset()
    back = to_utc(value["dateTime"], value["timeZone"])
    if ambiguous:
        # The repeated hour cannot be told apart from wall time alone: at most the DST shift off.
        assert abs(back - instant) <= timedelta(hours=1)
    else:
        assert back == instant


@given(instant=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2060, 1, 1), timezones=st.just(UTC)))
def test_utc_round_trip_is_always_exact_R33(instant: datetime) -> None:
    value = from_utc(instant)
    assert to_utc(value["dateTime"], value["timeZone"]) == instant
