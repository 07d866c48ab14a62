"""The verification code docs/webhooks.md gives receivers works on a call the hub signed.

The Python snippet runs here; the JavaScript one runs under Node (`node` on the PATH). Both
must accept the real call the dispatcher made to a loopback receiver, and refuse it with a
changed body, another secret or an old timestamp.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from contacthub.events import signing
from contacthub.events.dispatcher import Dispatcher
from contacthub.settings import Settings
from contacthub.storage.database import Database
from tests.events.helpers import add_endpoint, drive, emit
from tests.events.receiver import Received, receiving

DOC = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"
SECTION = "## Delivery, signatures and retries"

NODE_HARNESS = """
const { verifyWebhook } = require(process.argv[2]);
const cases = JSON.parse(require("node:fs").readFileSync(0, "utf8"));
const answers = cases.map((c) => verifyWebhook(c.secret, c.headers, Buffer.from(c.body, "base64")));
process.stdout.write(JSON.stringify(answers));
"""


def snippet(language: str) -> str:
    text = DOC.read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)
    return code


@pytest.fixture
def signed_call(database: Database, settings: Settings) -> tuple[str, Received]:
    """A real call of the dispatcher, as the receiver got it, and the endpoint's secret."""
    with receiving() as receiver:
        _, secret = add_endpoint(database, receiver.url)
        emit(database, 1, 0)
        dispatcher = Dispatcher(database, settings, holder="docs")
        try:
            drive(dispatcher, lambda: len(receiver.ok_ids()) == 1)
        finally:
            dispatcher.close()
        [call] = receiver.received()
    return secret, call


def cases(secret: str, call: Received) -> list[tuple[str, dict[str, str], bytes, bool]]:
    """(secret, headers, body, genuine?) to check."""
    old = dict(call.headers)
    old["webhook-timestamp"] = str(int(old["webhook-timestamp"]) - 3600)
    old["webhook-signature"] = signing.sign(
        secret, old["webhook-id"], int(old["webhook-timestamp"]), call.body
    )
    rotated = dict(call.headers)
    rotated["webhook-signature"] = "v1,AAAA " + call.headers["webhook-signature"]
    return [
        (secret, call.headers, call.body, True),
        (secret, rotated, call.body, True),
        (secret, call.headers, call.body.replace(b'"seq":0', b'"seq":1'), False),
        (signing.new_secret(), call.headers, call.body, False),
        (secret, old, call.body, False),
    ]


def test_the_python_snippet_verifies_a_signed_call(signed_call: tuple[str, Received]) -> None:
    secret, call = signed_call
    namespace: dict[str, Any] = {}
    exec(compile(snippet("python"), str(DOC), "exec"), namespace)  # noqa: S102 - our own docs
    verify = namespace["verify_webhook"]
    for key, headers, body, genuine in cases(secret, call):
        assert verify(key, headers, body) is genuine


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_javascript_snippet_verifies_a_signed_call(
    signed_call: tuple[str, Received], tmp_path: Path
) -> None:
    secret, call = signed_call
    module = tmp_path / "verify.js"
    module.write_text(snippet("javascript"), encoding="utf-8")
    harness = tmp_path / "harness.js"
    harness.write_text(NODE_HARNESS, encoding="utf-8")
    checks = cases(secret, call)
    payload = [
        {"secret": key, "headers": headers, "body": base64.b64encode(body).decode()}
        for key, headers, body, _ in checks
    ]
    node = shutil.which("node")
    assert node is not None
    finished = subprocess.run(
        [node, str(harness), str(module)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout) == [genuine for *_, genuine in checks]


def test_the_signature_matches_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert signing.sign(secret, msg_id, timestamp, body) == expected
    assert signing.verify(secret, msg_id, timestamp, body, expected, now=timestamp + 10)
    assert not signing.verify(secret, msg_id, timestamp, body, expected, now=timestamp + 301)
    assert not signing.verify(secret, msg_id, timestamp, body + " ", expected, now=timestamp)
    assert not signing.verify(secret, msg_id, "nan", body, expected, now=timestamp)
    assert signing.verify(secret, msg_id, timestamp, body, "v1,x " + expected, now=timestamp)
    assert signing.new_secret().startswith("whsec_")
    assert len(base64.b64decode(signing.new_secret()[6:])) == 24
    with pytest.raises(ValueError, match="whsec_"):
        signing.sign("whsec_not base64!", msg_id, timestamp, body)
