#!/usr/bin/env bash
# Regenerate tests/reference/values/*.json from tests/reference/data/*.csv.
#
#   bash tests/reference/r/run_all.sh                 # all outputs (~10-20 min on 2 cores)
#   bash tests/reference/r/run_all.sh kielmc_2x2      # only some: mpdta_twfe mpdta_event_study
#                                                     #   card_krueger_twfe kielmc_2x2 injury_2x2
#   REF_FULL_CLUBSANDWICH=1 bash ...                  # also run clubSandwich's own Satterthwaite
#                                                     #   step on the weighted 500-cluster fit
#                                                     #   (+12 min, ~10 GB RAM)
#   CROSSCHECK=1 bash ...                             # then compare with statsmodels
#
# Requirements: R >= 4.2 with sandwich, clubSandwich, lmtest, jsonlite
#   (Debian: apt-get install r-cran-sandwich r-cran-clubsandwich r-cran-lmtest r-cran-jsonlite).
# The CSV inputs are committed; tests/reference/r/make_data.py rebuilds them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"

Rscript -e 'for (p in c("sandwich","clubSandwich","lmtest","jsonlite")) if (!requireNamespace(p, quietly = TRUE)) stop("missing R package ", p)'
Rscript "$here/twfe_references.R" "$@"

# the inputs must be the committed ones
(cd "$root/tests/reference/data" && md5sum mpdta.csv card_krueger.csv kielmc.csv injury.csv)

if [[ "${CROSSCHECK:-}" == "1" ]]; then
  py="${PYTHON:-$root/.venv/bin/python}"
  "$py" "$here/crosscheck_statsmodels.py"
fi
