"""`python -m hybridopt infra ACTION --profile NAME`: the experiment's own AWS platforms as code
(hybridopt.infra; the README's "Deploying the experiment's platforms").

  synth     write the CloudFormation templates (AWS CDK, offline) and list their resources; --lint
  lint      run cfn-lint on the written templates
  package   build the deployable Lambda zip (the workloads + their dependencies as manylinux wheels)
  image     print the container image's tag and the commands that build and push it
  deploy    --dry-run: what would change (read-only calls when credentials exist, else none);
            --aws-opt-in: deploy both stacks for real and write the outputs file
  outputs   read the deployed stack's two base URLs into params/<profile>.outputs.yaml
  teardown  --dry-run: what would be deleted and what stays; --aws-opt-in: delete the stacks
  cost      an hour of each load pattern on these platforms, billed by the project's cost model
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hybridopt.params import Params, load_params

if TYPE_CHECKING:
    from hybridopt.infra.synth import LintResult

ACTIONS = ("synth", "lint", "package", "image", "deploy", "outputs", "teardown", "cost")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=ACTIONS, help="what to do (see the module help)")
    parser.add_argument("--profile", required=True, help="params profile (params/<profile>.yaml)")
    parser.add_argument("--out", type=Path, default=None, help="synth: write the templates here (default: "
                        "params infra.synth_dir)")
    parser.add_argument("--lint", action="store_true", help="synth: also run cfn-lint on the templates")
    parser.add_argument("--dry-run", action="store_true", help="deploy/teardown: print what would happen")
    parser.add_argument("--aws-opt-in", action="store_true",
                        help="deploy/teardown: yes, change the AWS account of the standard credential chain")
    parser.add_argument("--offline", action="store_true",
                        help="deploy --dry-run: do not read the deployed stacks even when credentials exist")
    parser.add_argument("--image-tag", default=None, help="deploy: the image tag in ECR (default: the tag of "
                        "the current code, `infra image`)")
    parser.add_argument("--seed", type=int, default=42, help="cost: the simulator's seed")


def run(args: argparse.Namespace) -> int:
    params = load_params(args.profile)
    try:
        return _ACTIONS[args.action](params, args)
    except Exception as exc:  # botocore: no credentials, access denied, throttling, ...
        from botocore.exceptions import BotoCoreError, ClientError

        if not isinstance(exc, (BotoCoreError, ClientError)):
            raise
        print(f"error: AWS call failed: {type(exc).__name__}: {exc}")
        return 1


def _synth(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import synth as S

    syn = S.synth(params, args.out)
    print(S.render_resources(syn))
    if args.lint:
        return _lint_result(S.cfn_lint([syn.template_path(n) for n in syn.templates], params.infra.region))
    return 0


def _lint(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import synth as S

    syn = S.load_synthesized(params, args.out)
    return _lint_result(S.cfn_lint([syn.template_path(n) for n in syn.templates], params.infra.region))


def _lint_result(res: "LintResult") -> int:
    print(f"cfn-lint on {len(res.templates)} templates: {'no findings' if res.ok else 'exit ' + str(res.returncode)}")
    if res.output:
        print(res.output)
    return 0 if res.ok else 1


def _package(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import bundle
    from hybridopt.infra.synth import synth_dir

    rep = bundle.build_lambda_zip(bundle.zip_path(synth_dir(params)), with_dependencies=True,
                                  python_version=params.infra.lambda_runtime.removeprefix("python"),
                                  architecture=params.infra.lambda_architecture)
    print(f"Lambda zip {rep.path}: {rep.zip_bytes / 1e6:.1f} MB ({rep.unzipped_bytes / 1e6:.1f} MB unzipped, "
          f"{rep.n_files} files), sha256 {rep.sha256[:16]}..., handler {rep.handler}")
    return 0


def _image(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import bundle
    from hybridopt.infra.settings import settings

    cfg = settings(params)
    tag = bundle.image_tag()
    repo = f"<account>.dkr.ecr.{cfg.region}.amazonaws.com/{cfg.repository_name}"
    print(f"image tag {tag} (SHA-256 of {', '.join(sorted(bundle.image_files()))})")
    print("build and push it from the repository root (Docker with buildx; the account id from "
          "`aws sts get-caller-identity`):")
    print(f"  docker build --platform linux/amd64 -f lib/hybridopt/infra/Dockerfile -t {cfg.repository_name}:{tag} .")
    print(f"  aws ecr get-login-password --region {cfg.region} | docker login --username AWS --password-stdin "
          f"{repo.split('/')[0]}")
    print(f"  docker tag {cfg.repository_name}:{tag} {repo}:{tag}")
    print(f"  docker push {repo}:{tag}")
    print(f"(the repository exists once the {cfg.artifacts_stack} stack is deployed: `infra deploy --aws-opt-in` "
          "creates it first and stops before the platforms if the image is missing)")
    return 0


def _deploy(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import bundle
    from hybridopt.infra import deploy as dep
    from hybridopt.infra import synth as S

    if not (args.dry_run or args.aws_opt_in):
        print("not deployed: pass --dry-run to see the plan, or --aws-opt-in to deploy to AWS (costs money)")
        return 2
    syn = S.synth(params, args.out)
    tag = args.image_tag or bundle.image_tag()
    if args.dry_run:
        region = params.infra.region
        use_aws = not args.offline and dep.have_credentials(region)
        cf = dep.Clients.create(region).cloudformation if use_aws else None
        print(dep.plan(syn, cf).render())
        print(f"parameters: {dep.LAMBDA_CODE_KEY_PARAM}=lambda/<sha256 of the zip>.zip, {dep.IMAGE_TAG_PARAM}={tag}")
        print(f"left when torn down: {len(dep.retained_resources(syn))} retained resources (log groups, ECR repository)")
        print("dry run: nothing changed")
        return 0
    rep = bundle.build_lambda_zip(bundle.zip_path(syn.out_dir), with_dependencies=True,
                                  python_version=params.infra.lambda_runtime.removeprefix("python"),
                                  architecture=params.infra.lambda_architecture)
    clients = dep.Clients.create(params.infra.region)
    print(dep.plan(syn, clients.cloudformation).render())
    res = dep.deploy(params, syn, clients, zip_file=Path(rep.path), zip_sha256=rep.sha256, image_tag=tag)
    print(f"{syn.cfg.artifacts_stack}: {res.artifacts}; {syn.cfg.platforms_stack}: {res.platforms}")
    print(f"  Lambda base URL {res.lambda_base_url}\n  ECS base URL    {res.ecs_base_url}\n"
          f"  written to {res.outputs_file} (git-ignored; the {params.profile} profile reads it)")
    return 0


def _outputs(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import deploy as dep
    from hybridopt.infra.settings import settings

    cfg = settings(params)
    clients = dep.Clients.create(params.infra.region)
    lam, ecs_url, path = dep.write_outputs(params, dep.stack_outputs(clients.cloudformation, cfg.platforms_stack))
    print(f"Lambda base URL {lam}\nECS base URL    {ecs_url}\nwritten to {path}")
    return 0


def _teardown(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra import deploy as dep
    from hybridopt.infra import synth as S

    if not (args.dry_run or args.aws_opt_in):
        print("nothing deleted: pass --dry-run to see what would go, or --aws-opt-in to delete the stacks")
        return 2
    syn = S.synth(params, args.out)
    region = params.infra.region
    if args.dry_run and (args.offline or not dep.have_credentials(region)):
        report = dep.teardown_offline(syn)
    else:
        report = dep.teardown(syn, dep.Clients.create(region), dry_run=args.dry_run)
    print(report.render())
    return 0


def _cost(params: Params, args: argparse.Namespace) -> int:
    from hybridopt.infra.costs import hourly_costs

    print(hourly_costs(params, args.seed).render())
    return 0


_ACTIONS = {"synth": _synth, "lint": _lint, "package": _package, "image": _image, "deploy": _deploy,
            "outputs": _outputs, "teardown": _teardown, "cost": _cost}
