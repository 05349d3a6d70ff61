"""The IMS, KMS and IAM client: ``client.ImsClient``, its models, request signing and token authentication."""
