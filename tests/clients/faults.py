"""A TCP proxy in front of a broker that can lose produce responses: it forwards a
Produce request, reads the broker's answer, drops it and cuts the connection, so the
client retries the same batch on a new connection."""

import socket
import struct
import threading

PRODUCE = 0


def read_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock):
    size = struct.unpack(">i", read_exact(sock, 4))[0]
    return struct.pack(">i", size) + read_exact(sock, size)


class LossyProxy:
    """Drops the response to every `every`-th Produce request (counted over all
    connections) and closes that connection. `upstream_port` may be set after the proxy
    starts (before the first connection), when the broker's port is chosen later."""

    def __init__(self, upstream_port, every):
        self.upstream_port = upstream_port
        self.every = every
        self.produces = 0
        self.dropped = 0
        self.lock = threading.Lock()
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        pending = []  # api keys of forwarded requests, in order
        cond = threading.Condition()

        def client_to_broker():
            try:
                while True:
                    frame = read_frame(client)
                    api_key = struct.unpack(">h", frame[4:6])[0]
                    with cond:
                        pending.append(api_key)
                        cond.notify()
                    upstream.sendall(frame)
            except (ConnectionError, OSError):
                pass
            finally:
                for s in (client, upstream):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=client_to_broker, daemon=True).start()
        try:
            while True:
                frame = read_frame(upstream)
                with cond:
                    while not pending:
                        cond.wait()
                    api_key = pending.pop(0)
                if api_key == PRODUCE:
                    with self.lock:
                        self.produces += 1
                        drop = self.produces % self.every == 0
                        if drop:
                            self.dropped += 1
                    if drop:
                        break
                client.sendall(frame)
        except (ConnectionError, OSError):
            pass
        finally:
            # shutdown() first: close() alone leaves the connection open while the other
            # thread is blocked reading it, and the client would only notice at its
            # request timeout.
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self):
        self.server.close()
