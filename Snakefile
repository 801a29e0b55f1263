"""archive-twins: identical images, same-pixel files and transformed copies.

Run with `snakemake --cores N` (defaults in config.yaml) or
`snakemake --cores N --config archive=DIR results=DIR`.
"""

from snakemake.utils import min_version, validate

min_version("9.0")


# next to this Snakefile: `snakemake -s /path/to/Snakefile` works from any directory
configfile: f"{workflow.basedir}/config.yaml"


import sys

sys.path.insert(0, workflow.basedir)
from archive_twins.configcheck import config_problem

# one line naming the key (Snakemake's own message prints the whole schema)
if _problem := config_problem(config, f"{workflow.basedir}/schemas/config.schema.yaml"):
    raise WorkflowError(_problem)
validate(config, "schemas/config.schema.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/decode.smk"
include: "rules/match.smk"
include: "rules/aggregate.smk"
include: "rules/html.smk"
include: "rules/publish.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        # archive.sqlite, json/ and html/, published together (rules/publish.smk)
        f"{RESULTS}/state/published.json",
        f"{RESULTS}/report/summary.tsv",
        f"{RESULTS}/report/pages",
