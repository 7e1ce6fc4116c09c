#!/usr/bin/python3
"""chain.py: wstap-bench's base64 + AES-GCM codec as a wstap exec hook.

    wstap --hook 'exec:/usr/bin/python3 chain.py' --hook replace:match=WORD,with=OTHER

(-sections chains, target "exec"). Each message is base64(nonce(12) || AES-256-GCM
ciphertext || tag(16)); "decode" returns the plaintext, "encode" (asked only when the
replace hook after it changed the plaintext) encrypts it again with a fresh nonce.
The key is the 64 hex digits in WSTAP_BENCH_KEY. One JSON object per line on stdin
and stdout, payloads base64 (see github.com/wstap/wstap/plugins/exechook). Needs
Debian's python3-cryptography.
"""
import base64
import binascii
import json
import os
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12
TAG = 16


def load_key():
    try:
        key = bytes.fromhex(os.environ.get("WSTAP_BENCH_KEY", ""))
    except ValueError:
        key = b""
    if len(key) != 32:
        sys.exit("chain.py: WSTAP_BENCH_KEY: want 64 hex digits (an AES-256 key)")
    return AESGCM(key)


def decode(aead, payload):
    """Returns the plaintext of a message, or raises ValueError."""
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError("not base64: %s" % e)
    if len(raw) < NONCE + TAG:
        raise ValueError("too short for nonce and tag")
    try:
        return aead.decrypt(raw[:NONCE], raw[NONCE:], None)
    except InvalidTag:
        raise ValueError("does not decrypt with the key")


def encode(aead, plaintext):
    nonce = os.urandom(NONCE)
    return base64.b64encode(nonce + aead.encrypt(nonce, plaintext, None))


def main():
    aead = load_key()
    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        kind = req.get("type")
        if kind == "hello":
            ans = {"name": "benchcodec", "codec": True}
        elif kind == "decode":
            try:
                plain = decode(aead, base64.b64decode(req.get("payload", "")))
                ans = {"id": req["id"], "payload": base64.b64encode(plain).decode()}
            except ValueError as e:
                ans = {"id": req["id"], "error": str(e)}
        elif kind == "encode":
            decoded = base64.b64decode(req.get("decoded", ""))
            ans = {"id": req["id"], "payload": base64.b64encode(encode(aead, decoded)).decode()}
        else:
            # A codec is not asked for message verdicts, but pass if it ever is.
            ans = {"id": req["id"], "action": "pass"}
        out.write(json.dumps(ans) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
