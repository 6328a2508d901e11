"""The router: the Lambda inference handler (handler.py) with its pure-Python tree evaluators
(trees.py), packaging (package.py), boto3 deployment (deploy.py), the testbed A/B hook
(testbed_route.py), online A/B statistics (ab.py) and offline policy evaluation (policy_eval.py).

This __init__ imports nothing: the Lambda package ships hybridopt/{__init__,contract,features}.py
and hybridopt/router/{__init__,handler,trees}.py only, with no third-party dependency but tzdata.
"""
