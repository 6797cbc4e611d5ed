#!/usr/bin/env Rscript
# Reference values for evalkit.power (tests/reference/test_reference_power.py).
#
#   Rscript tests/reference/r/power_references.R     # writes tests/reference/values/power_pwr.json
# Needs R >= 4.2 with pwr and jsonlite (Debian: r-cran-pwr r-cran-jsonlite).
#
# Mapping to evalkit's normal-approximation variance:
# * pwr.2p2n.test / pwr.2p.test use Cohen's h (arcsine); evalkit.power.power_two_proportions
#   (method="arcsine") reproduces them exactly.
# * pwr.norm.test(d, n) is Phi(d sqrt(n) - z) + Phi(-d sqrt(n) - z). A disparity DiD with equal
#   group variances sigma^2 (p_R = 0.7, p_M = 0.3: both 0.21), rho, one pre/one post year and
#   known SE has delta / SE = d sqrt(n) with n = n_R n_M / (n_R + n_M) and
#   d = delta / sqrt(2 sigma^2 (1 - rho)).
# * pwr.t2n.test (noncentral t, df = n1 + n2 - 2) equal evalkit's distribution="t"
#   when the Satterthwaite df is n1 + n2 - 2, i.e. for equal group sizes and variances.
suppressPackageStartupMessages({library(pwr); library(jsonlite)})

args_file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])
out <- file.path(dirname(args_file), "..", "values", "power_pwr.json")

alt_map <- c("two-sided" = "two.sided", "larger" = "greater", "smaller" = "less")

cases_2p2n <- list(
  list(p1 = 0.708, p2 = 0.638, n1 = 1000, n2 = 400, alpha = 0.05, alternative = "two-sided"),
  list(p1 = 0.747, p2 = 0.661, n1 = 5000, n2 = 800, alpha = 0.05, alternative = "two-sided"),
  list(p1 = 0.319, p2 = 0.239, n1 = 300, n2 = 2500, alpha = 0.01, alternative = "larger"),
  list(p1 = 0.50, p2 = 0.55, n1 = 250, n2 = 250, alpha = 0.05, alternative = "smaller"),
  list(p1 = 0.05, p2 = 0.02, n1 = 700, n2 = 900, alpha = 0.10, alternative = "two-sided")
)
res_2p2n <- lapply(cases_2p2n, function(c) {
  h <- ES.h(c$p1, c$p2)
  call <- sprintf("pwr.2p2n.test(h = ES.h(%g, %g), n1 = %g, n2 = %g, sig.level = %g, alternative = '%s')",
                  c$p1, c$p2, c$n1, c$n2, c$alpha, alt_map[[c$alternative]])
  c$h <- h
  c$power <- pwr.2p2n.test(h = h, n1 = c$n1, n2 = c$n2, sig.level = c$alpha, alternative = alt_map[[c$alternative]])$power
  c$call <- call
  c
})

# disparity DiD with equal variances -> pwr.norm.test
cases_norm <- list(
  list(n_r = 4000, n_m = 1000, rho = 0.5, delta = 0.03, alpha = 0.05, alternative = "two-sided"),
  list(n_r = 2500, n_m = 600, rho = 0.0, delta = 0.05, alpha = 0.05, alternative = "larger"),
  list(n_r = 800, n_m = 800, rho = 0.7, delta = 0.025, alpha = 0.01, alternative = "two-sided")
)
sigma2 <- 0.7 * 0.3
res_norm <- lapply(cases_norm, function(c) {
  n <- c$n_r * c$n_m / (c$n_r + c$n_m)
  d <- c$delta / sqrt(2 * sigma2 * (1 - c$rho))
  c$p_reference <- 0.7; c$p_minority <- 0.3; c$n_eff <- n; c$d <- d
  c$power <- pwr.norm.test(d = d, n = n, sig.level = c$alpha, alternative = alt_map[[c$alternative]])$power
  # MDE at power 0.8 (pwr solves d; evalkit's mde_disparity ignores the far tail: < 1e-6 relative)
  # pwr's own solver stops at uniroot's default tol (~1e-4 in d): solve pwr's power function tightly
  d80 <- uniroot(function(x) pwr.norm.test(d = x, n = n, sig.level = c$alpha,
                                            alternative = alt_map[[c$alternative]])$power - 0.8,
                 c(1e-10, 10), tol = 1e-14)$root
  c$mde_80 <- d80 * sqrt(2 * sigma2 * (1 - c$rho))
  c$call <- sprintf("pwr.norm.test(d = %.15g, n = %.15g, sig.level = %g, alternative = '%s'); d solving power = 0.8 (uniroot, tol 1e-14)",
                    d, n, c$alpha, alt_map[[c$alternative]])
  c
})

# balanced, equal variances, no clustering -> noncentral t with df = 2n - 2 (pwr.t.test / pwr.t2n.test)
cases_t <- list(
  list(n = 15, rho = 0.5, delta = 0.25, alpha = 0.05, alternative = "two-sided"),
  list(n = 40, rho = 0.2, delta = 0.12, alpha = 0.05, alternative = "larger"),
  list(n = 8, rho = 0.0, delta = 0.4, alpha = 0.10, alternative = "two-sided")
)
res_t <- lapply(cases_t, function(c) {
  d <- c$delta / sqrt(2 * sigma2 * (1 - c$rho))
  c$p_reference <- 0.7; c$p_minority <- 0.3; c$d <- d
  c$power <- pwr.t2n.test(n1 = c$n, n2 = c$n, d = d, sig.level = c$alpha, alternative = alt_map[[c$alternative]])$power
  d80 <- uniroot(function(x) pwr.t2n.test(n1 = c$n, n2 = c$n, d = x, sig.level = c$alpha,
                                           alternative = alt_map[[c$alternative]])$power - 0.8,
                 c(1e-10, 20), tol = 1e-14)$root
  c$mde_80 <- d80 * sqrt(2 * sigma2 * (1 - c$rho))
  c$call <- sprintf("pwr.t2n.test(n1 = %d, n2 = %d, d = %.15g, sig.level = %g, alternative = '%s'); d solving power = 0.8 (uniroot, tol 1e-14)",
                    c$n, c$n, d, c$alpha, alt_map[[c$alternative]])
  c
})

doc <- list(
  generated_by = "tests/reference/r/power_references.R",
  r_version = R.version.string,
  packages = list(pwr = as.character(packageVersion("pwr")), jsonlite = as.character(packageVersion("jsonlite"))),
  two_proportions_arcsine = res_2p2n,
  disparity_norm = res_norm,
  disparity_t = res_t
)
writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE), out)
cat("wrote", normalizePath(out), "\n")
