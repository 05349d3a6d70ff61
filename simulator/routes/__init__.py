"""HTTP routes: IMS, KMS and IAM as Huawei's API reference describes them, and the simulator's own ``/_sim/``."""
