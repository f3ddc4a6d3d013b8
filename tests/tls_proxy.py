"""A Docker engine on TCP with TLS, as `dockerd --tlsverify` offers it: TLS on 127.0.0.1:PORT requiring a
client certificate signed by the test CA, every connection passed on to the local engine's socket.

    python3 tls_proxy.py PORT CERT_DIR [SOCKET]

CERT_DIR holds ca.pem, server-cert.pem and server-key.pem (made by tests/services.sh).
"""

import asyncio
import os
import ssl
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(1 << 16)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main():
    port = int(sys.argv[1])
    certs = sys.argv[2]
    socket_path = sys.argv[3] if len(sys.argv) > 3 else "/var/run/docker.sock"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=os.path.join(certs, "ca.pem"))
    context.load_cert_chain(os.path.join(certs, "server-cert.pem"), os.path.join(certs, "server-key.pem"))
    context.verify_mode = ssl.CERT_REQUIRED

    async def handle(client_reader, client_writer):
        try:
            engine_reader, engine_writer = await asyncio.open_unix_connection(socket_path)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, engine_writer), pipe(engine_reader, client_writer))

    server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


asyncio.run(main())
