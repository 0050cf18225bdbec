#!/usr/bin/env python3
"""Minimal QMP client for by-hand tests.

    qmp.py SOCKET COMMAND [JSON-ARGUMENTS] [--timeout SECONDS]
    qmp.py SOCKET hmp "info mtree"            (human monitor command)

Prints the "return" value as JSON (or the HMP text); exits 1 on a QMP error.
"""
import json
import socket
import sys


def qmp(path, command, arguments=None, timeout=10.0):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    f = s.makefile("rw")

    def read():
        while True:
            line = f.readline()
            if not line:
                raise EOFError("QMP connection closed")
            msg = json.loads(line)
            if "event" not in msg:  # skip asynchronous events
                return msg

    read()  # greeting
    f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    f.flush()
    read()
    req = {"execute": command}
    if arguments:
        req["arguments"] = arguments
    f.write(json.dumps(req) + "\n")
    f.flush()
    reply = read()
    s.close()
    return reply


def main(argv):
    timeout = 10.0
    if "--timeout" in argv:
        i = argv.index("--timeout")
        timeout = float(argv[i + 1])
        del argv[i:i + 2]
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    path, command = argv[1], argv[2]
    if command == "hmp":
        reply = qmp(path, "human-monitor-command", {"command-line": argv[3]}, timeout)
        if "return" in reply:
            print(reply["return"], end="")
            return 0
    else:
        args = json.loads(argv[3]) if len(argv) > 3 else None
        reply = qmp(path, command, args, timeout)
        if "return" in reply:
            print(json.dumps(reply["return"]))
            return 0
    print(json.dumps(reply), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
