"""HTTP routes: IMS, KMS and IAM as the contract describes them, and the simulator's own ``/_sim/``."""
