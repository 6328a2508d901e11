"""hybridopt: the tested logic behind the Lambda-vs-Fargate placement notebooks."""

__version__ = "0.1.0"
