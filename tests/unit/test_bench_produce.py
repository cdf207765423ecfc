"""`odradek bench produce` against the fake broker: failures of untimed records count."""

from __future__ import annotations

import grpc
import pytest

from odradek.cli.bench_cmd import produce_bench
from odradek.cli.main import build_parser
from odradek.client.errors import OdradekError
from tests.unit.fake_odradek import FakeCluster


async def test_a_failed_record_fails_the_bench_even_when_it_was_not_timed() -> None:
    fake = await FakeCluster(1).start()
    try:
        fake.create_topic("b", 1)
        args = build_parser().parse_args([
            "bench", "produce", "--bootstrap", fake.bootstrap, "--topic", "b",
            "--records", "300", "--record-size", "10", "--latency-every", "1000",
            "--no-progress", "--no-idempotence"])
        result = await produce_bench(args)
        assert result["records"] == 300 and result["latency_samples"] == 1
        assert len(fake.records("b", 0)) == 300
        # Only the first record is timed, and its batch is stored; the ones after fail.
        fake.inject("Produce", "CORRUPT_RECORD", grpc.StatusCode.INVALID_ARGUMENT, count=1000,
                    skip=1)
        args.batch_size = 200
        with pytest.raises(OdradekError, match="records were not delivered"):
            await produce_bench(args)
    finally:
        await fake.stop()
