"""netstack: the portable network client side (runs on MicroPython and CPython).

`http` is an HTTP/1.1 client over any `socket` module (the firmware's is MicroPython's lwIP socket, the host's
and the unix port's are the OS's): keep-alive, chunked bodies, the `oci.http` transport interface that the
OCI client and the metadata fetcher run over. `resolve` turns host names into addresses (search domain,
every server the lease gave). The packet path below them (virtio-net, lwIP) is the firmware's C.
"""
