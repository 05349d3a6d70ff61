"""A local stand-in for Huawei Cloud IMS + KMS + IAM, written from ``ims-contract.md``.

It shares no code with the IMS client in ``worker/``: both are written from the contract, so each checks the other.
"""
