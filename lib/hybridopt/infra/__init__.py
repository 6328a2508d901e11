"""The experiment's own AWS platforms as code, and what AWS logged about them.

- `entry`: the workloads' entry points on AWS (Lambda handler, container WSGI app); ships in the
  Lambda zip and the container image with `hybridopt.workloads` (`bundle` lists the files).
- `gunicorn_conf`: the container's server settings (worker slots per task, health port).
- `bundle`: the Lambda zip and the image tag (a hash of what the image is built from).
- `stack`: the AWS CDK stacks (imports aws-cdk-lib; nothing else in this package does).
- `synth`: template synthesis, the resource list, cfn-lint; `deploy`: plan, deploy, outputs, teardown (boto3).
- `platform_logs`: REPORT lines and ECS task events from CloudWatch, joined to the request log.
- `costs`: what an hour of each load pattern costs on the deployed platforms.

This `__init__` imports nothing: the Lambda zip and the image ship it beside `entry`."""
