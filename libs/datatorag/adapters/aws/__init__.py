"""Production adapters on AWS (aiobotocore): ``SqsQueue``, ``S3BlobStore``, ``DynamoDbRegistry``,
and ``provision_aws`` to create their queues, bucket and table. Each module imports on its own."""
