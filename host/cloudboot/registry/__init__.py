"""Host side of OCI distribution: client construction (credentials, TLS), push builders, cosign signing.

The wire work is done by the portable client (`oci.client`) over `oci.transport_cpython`, so the host and the
firmware speak to registries with the same code.
"""
