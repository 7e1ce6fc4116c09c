#!/usr/bin/python3
"""chatdecrypt: a codec for the encrypted-chat example, as a wstap exec hook.

    wstap --hook 'exec:/usr/bin/python3 examples/hooks/chatdecrypt.py'

Each chat message is base64(nonce(12) || AES-256-GCM ciphertext || tag(16)) of a
JSON object. "decode" unwraps and decrypts it, so the hooks after it and the event
log see the JSON; "encode", asked only when a later hook changed the JSON, encrypts
it again with a fresh random nonce. The key is the chat's demo key, or the 64 hex
digits in the environment variable CHAT_KEY.

wstap speaks one JSON object per line on stdin/stdout (payloads base64); see the
package documentation of github.com/wstap/wstap/plugins/exechook for the schema.
Needs Debian's python3-cryptography (apt-get install python3-cryptography).
"""
import base64
import binascii
import json
import os
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

DEMO_KEY = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
NONCE = 12
TAG = 16


def load_key():
    try:
        key = bytes.fromhex(os.environ.get("CHAT_KEY") or DEMO_KEY)
    except ValueError:
        key = b""
    if len(key) != 32:
        sys.exit("chatdecrypt.py: CHAT_KEY: want 64 hex digits (an AES-256 key)")
    return AESGCM(key)


def decode(aead, payload):
    """Returns the plaintext of a chat message, or raises ValueError."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("not base64: %s" % e)
    if len(raw) < NONCE + TAG:
        raise ValueError("too short for nonce and tag")
    try:
        return aead.decrypt(raw[:NONCE], raw[NONCE:], None)
    except InvalidTag:
        raise ValueError("does not decrypt with the chat key")


def encode(aead, plaintext):
    nonce = os.urandom(NONCE)
    return base64.b64encode(nonce + aead.encrypt(nonce, plaintext, None))


def answer(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    aead = load_key()
    for line in sys.stdin:
        req = json.loads(line)
        kind = req.get("type")
        if kind == "hello":
            answer({"name": "chatdecrypt", "codec": True})
            continue
        rid = req["id"]
        payload = base64.b64decode(req.get("payload", ""))
        if kind == "decode":
            try:
                plain = decode(aead, payload)
            except ValueError as e:
                answer({"id": rid, "error": str(e)})
                continue
            answer({"id": rid, "payload": base64.b64encode(plain).decode()})
        elif kind == "encode":
            decoded = base64.b64decode(req.get("decoded", ""))
            answer({"id": rid, "payload": base64.b64encode(encode(aead, decoded)).decode()})
        else:
            # A codec is not asked for message verdicts, but pass if it ever is.
            answer({"id": rid, "action": "pass"})


if __name__ == "__main__":
    main()
