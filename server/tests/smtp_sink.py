"""A real SMTP server for the courier tests, on aiosmtpd (Debian's
python3-aiosmtpd). Every accepted message is written to DIR as an .eml file.
Recipients whose local part starts with "reject" get a permanent 550, with
"tempfail" a transient 451. --delay slows each DATA, so a test can kill a
courier mid-batch. Prints "ready" once it listens; stops on SIGTERM."""

import argparse
import asyncio
import os
import signal
import threading
import uuid

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory, delay):
        self.directory = directory
        self.delay = delay

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0]
        if local.startswith("reject"):
            return "550 5.1.1 Mailbox unavailable"
        if local.startswith("tempfail"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        name = uuid.uuid4().hex
        partial = os.path.join(self.directory, "." + name)
        with open(partial, "wb") as f:
            f.write(b"X-Envelope-From: " + envelope.mail_from.encode() + b"\r\n")
            f.write(b"X-Envelope-To: " + ",".join(envelope.rcpt_tos).encode() + b"\r\n")
            f.write(envelope.original_content)
        os.rename(partial, os.path.join(self.directory, name + ".eml"))
        return "250 2.0.0 Message accepted"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    controller = Controller(Sink(args.dir, args.delay), hostname="127.0.0.1", port=args.port)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
