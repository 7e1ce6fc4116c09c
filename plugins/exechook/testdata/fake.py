"""A fake exec hook for the tests: python3 fake.py MODE.

Modes: upper (hook: upper-cases c2s text, injects "ack" s2c), rev (codec: reverses
bytes), crash (exits on the first message), hang (never answers messages), garbage
(answers messages with a line that is not JSON), slowhello (never says hello).
"""
import base64
import json
import sys

mode = sys.argv[1]


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


for line in sys.stdin:
    req = json.loads(line)
    if req["type"] == "hello":
        if mode == "slowhello":
            continue
        out({"name": "fake-" + mode, "codec": mode == "rev"})
        continue
    if mode == "crash":
        sys.exit(3)
    if mode == "hang":
        continue
    if mode == "garbage":
        sys.stdout.write("this is not json\n")
        sys.stdout.flush()
        continue
    payload = base64.b64decode(req.get("payload", ""))
    if mode == "rev":
        if req["type"] == "decode":
            if payload.startswith(b"!"):
                out({"id": req["id"], "error": "not reversed text"})
            else:
                out({"id": req["id"], "payload": base64.b64encode(payload[::-1]).decode()})
        else:
            decoded = base64.b64decode(req.get("decoded", ""))
            out({"id": req["id"], "payload": base64.b64encode(decoded[::-1]).decode()})
        continue
    if req["dir"] == "c2s" and req["opcode"] == "text":
        out({"id": req["id"], "action": "modify", "payload": base64.b64encode(payload.upper()).decode(),
             "inject": [{"dir": "s2c", "opcode": "text", "payload": base64.b64encode(b"ack").decode()}]})
    else:
        out({"id": req["id"], "action": "pass"})
