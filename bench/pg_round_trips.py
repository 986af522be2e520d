#!/usr/bin/env python3
"""A pass-through TCP proxy in front of PostgreSQL that counts round trips: the client's
Sync and simple Query messages (each one waits for the server's ReadyForQuery). For
bench/daemon.sh: how many round trips a claim of a job costs.

  pg_round_trips.py LISTEN_PORT PG_HOST PG_PORT COUNT_FILE

The count (of every connection so far) is written to COUNT_FILE after each message."""
import asyncio
import struct
import sys

listen, host, port, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
count = 0
SSL_OR_GSS = (80877103, 80877104)


async def count_messages(reader, writer):
    """Client to server, after the startup packet: each message is a type byte and a length."""
    global count
    while True:
        head = await reader.readexactly(5)
        n = struct.unpack("!i", head[1:])[0]
        body = await reader.readexactly(n - 4)
        writer.write(head + body)
        if head[:1] in (b"S", b"Q"):
            count += 1
            with open(out, "w") as f:
                f.write(f"{count}\n")
        await writer.drain()


async def copy(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()


async def guarded(job, writer):
    try:
        await job
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def serve(cr, cw):
    # Startup packets (a length, then a code; no type byte). A request for TLS or GSS is
    # refused here ("N"), so the rest stays plain and countable: the client then starts in
    # the clear (sslmode=prefer, sqlx's and psql's default).
    while True:
        head = await cr.readexactly(8)
        n, code = struct.unpack("!ii", head)
        body = await cr.readexactly(n - 8)
        if code in SSL_OR_GSS:
            cw.write(b"N")
            await cw.drain()
            continue
        break
    sr, sw = await asyncio.open_connection(host, port)
    sw.write(head + body)
    await sw.drain()
    await asyncio.gather(guarded(count_messages(cr, sw), sw), guarded(copy(sr, cw), cw))


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen)
    with open(out, "w") as f:
        f.write("0\n")
    async with server:
        await server.serve_forever()


asyncio.run(main())
