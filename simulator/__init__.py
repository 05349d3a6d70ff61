"""A local stand-in for Huawei Cloud IMS + KMS + IAM, written from Huawei's public API reference
(documented in docs/simulator.md).

It shares no code with the IMS client in ``worker/``: both are written from the API reference, so each checks the
other.
"""
