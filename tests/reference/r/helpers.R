# Helpers shared by the reference scripts in tests/reference/r/.
# Sourced by twfe_references.R; not meant to be run on its own.
#
# Conventions (see tests/reference/README.md for the long version):
#   N      = number of observations used in the fit
#   K_all  = rank of the full lm design matrix (intercept + every dummy column)
#   K_cr1  = K of the fixest "nested" convention: regressors + fixed-effect levels that are
#            NOT nested in the cluster variable (fixest ssc(fixef.K = "nested"))
#   G      = number of clusters
# Every vcov below is for the lm() fit on the full dummy-variable design, so the
# coefficients of interest are the same as in a fixed-effects (absorbed) fit.

suppressPackageStartupMessages({
  library(sandwich)
  library(clubSandwich)
  library(lmtest)
  library(jsonlite)
})

# ---------------------------------------------------------------- paths, meta
script_dir <- function() {
  a <- commandArgs(trailingOnly = FALSE)
  f <- sub("^--file=", "", a[grep("^--file=", a)])
  if (length(f) == 1) dirname(normalizePath(f)) else normalizePath("tests/reference/r")
}
REF_DIR  <- normalizePath(file.path(script_dir(), ".."))
DATA_DIR <- file.path(REF_DIR, "data")
OUT_DIR  <- file.path(REF_DIR, "values")

data_path <- function(name) file.path(DATA_DIR, name)

input_meta <- function(files) {
  out <- lapply(files, function(f) list(
    path = paste0("tests/reference/data/", f),
    md5 = unname(tools::md5sum(data_path(f)))
  ))
  names(out) <- sub("\\.csv$", "", files)
  out
}

pkg_versions <- function() {
  p <- c("sandwich", "clubSandwich", "lmtest", "jsonlite")
  v <- lapply(p, function(x) as.character(utils::packageVersion(x)))
  names(v) <- p
  c(list(stats = as.character(getRversion())), v)
}

make_meta <- function(files, description) {
  list(
    description = description,
    generated_by = "tests/reference/r/twfe_references.R (run tests/reference/r/run_all.sh)",
    R_version = R.version.string,
    platform = R.version$platform,
    blas_lapack = list(BLAS = extSoftVersion()[["BLAS"]], LAPACK = La_library()),
    packages = pkg_versions(),
    inputs = input_meta(files),
    schema = paste(
      "specs.<name>: call (exact R code), N, G (clusters; absent if not clustered),",
      "K_all (rank of the full lm design), K_cr1 (K used in the fixest-convention CR1 factor),",
      "K_notes (which columns are counted), coef {name: value}, se {type: value} (event study:",
      "{type: {event_time: value}}), df {type: t degrees of freedom}, p_value {type: two-sided p},",
      "formulas {type: definition}. All numbers with 15 significant digits."
    )
  )
}

write_json_file <- function(obj, name) {
  dir.create(OUT_DIR, showWarnings = FALSE, recursive = TRUE)
  path <- file.path(OUT_DIR, paste0(name, ".json"))
  txt <- jsonlite::toJSON(obj, auto_unbox = TRUE, pretty = TRUE, digits = I(15),
                          null = "null", na = "null")
  writeLines(txt, path, useBytes = TRUE)
  message("wrote ", path)
  invisible(path)
}

# ---------------------------------------------------------------- small utils
se_vec <- function(V, nm) sqrt(diag(V)[nm])
one <- function(x) if (length(x) == 1) unname(x) else as.list(x)  # scalar or named dict
p_t <- function(b, se, df) 2 * stats::pt(-abs(b / se), df)
n_clusters <- function(cl) length(unique(cl))

# power of a symmetric psd matrix, eigenvalues <= 1e-12 set to 0 (a pseudo-inverse power):
# the same rule as clubSandwich:::matrix_power.  Needed because B_g is singular whenever
# fixed effects are nested in the clusters (the county dummies live inside cluster g).
sym_pow <- function(A, p, tol = 1e-12) {
  e <- eigen((A + t(A)) / 2, symmetric = TRUE)
  v <- ifelse(e$values > tol, e$values^p, 0)
  e$vectors %*% (v * t(e$vectors))
}

# ---------------------------------------------------------------- CR2, by hand
# Bell-McCaffrey / Pustejovsky-Tipton CR2 for a (weighted) lm on its full design,
# with working covariance `Phi` (a vector: diagonal of Phi), and the Satterthwaite df
# for each single coefficient in `coefs`.  Used (i) to cross-check clubSandwich and
# (ii) where clubSandwich's Satterthwaite step would need > 10 GB of memory
# (weighted fit with 505 columns and 500 clusters).
#   A_g  = D_g' B_g^{-1/2} D_g,  D_g = Phi_g^{1/2},  B_g = D_g [(I-H) Phi (I-H)']_gg D_g'
#   V    = M (sum_g X_g' W_g A_g e_g e_g' A_g' W_g X_g) M,  M = (X'WX)^{-1},  H = X M X'W
#   df_c = tr(S)^2 / ||S||_F^2,  S = Q' Phi Q,  Q[, g] = (I-H)_{g.}' A_g' W_g X_g M c
# Phi = 1 (identity) is clubSandwich's default target for a weighted lm
# (inverse_var = FALSE); Phi = 1/w is its inverse_var = TRUE target, which for
# weights constant within clusters equals the CR2 of the sqrt(w)-transformed OLS.
cr2_by_hand <- function(fit, cluster, coefs, Phi = NULL) {
  X <- model.matrix(fit)
  X <- X[, !is.na(coef(fit)), drop = FALSE]
  N <- nrow(X)
  w <- if (is.null(weights(fit))) rep(1, N) else weights(fit)
  if (is.null(Phi)) Phi <- rep(1, N)
  e <- residuals(fit)
  XW <- X * w
  M <- solve(crossprod(X, XW))                       # (X'WX)^-1
  Psi <- crossprod(XW, Phi * XW)                     # X'W Phi W X
  MPM <- M %*% Psi %*% M
  idx <- split(seq_len(N), cluster)
  J <- length(idx)
  cols <- match(coefs, colnames(X))
  k <- length(cols)
  meat_u <- matrix(0, ncol(X), J)
  U <- array(0, c(ncol(X), J, k))     # u_g = M X_g' g_g
  Fm <- array(0, c(ncol(X), J, k))    # F_g = X_g' W_g Phi_g g_g
  gg <- matrix(0, J, k)               # g_g' Phi_g g_g
  for (j in seq_len(J)) {
    ii <- idx[[j]]
    Xg <- X[ii, , drop = FALSE]
    WXg <- XW[ii, , drop = FALSE]
    Pg <- Phi[ii]
    Hgg <- Xg %*% M %*% t(WXg)                       # H_gg = X_g M X_g' W_g
    Om <- diag(Pg, length(ii)) - Hgg * rep(Pg, each = length(ii)) -
      t(Hgg) * Pg + Xg %*% MPM %*% t(Xg)             # [(I-H) Phi (I-H)']_gg
    D <- sqrt(Pg)
    B <- (D * Om) * rep(D, each = length(ii))
    A <- (D * sym_pow(B, -0.5)) * rep(D, each = length(ii))
    meat_u[, j] <- crossprod(WXg, A %*% e[ii])
    gv <- t(A) %*% WXg %*% M[, cols, drop = FALSE]    # n_g x k: c'M X_g'W_g A_g e_g = g'e_g
    U[, j, ] <- M %*% crossprod(Xg, gv)
    Fm[, j, ] <- crossprod(WXg, Pg * gv)
    gg[j, ] <- colSums(Pg * gv^2)
  }
  V <- M %*% tcrossprod(meat_u) %*% M
  dimnames(V) <- list(colnames(X), colnames(X))
  # q_g = (I-H)'_{.g} g_g = E_g g_g - W X u_g;  S = Q' Phi Q
  df <- sapply(seq_len(k), function(c) {
    Uc <- matrix(U[, , c], ncol = J); Fc <- matrix(Fm[, , c], ncol = J)
    FU <- crossprod(Fc, Uc)
    S <- diag(gg[, c], J) - FU - t(FU) + crossprod(Uc, Psi %*% Uc)
    sum(diag(S))^2 / sum(S^2)
  })
  names(df) <- coefs
  list(V = V, se = se_vec(V, coefs), df = df)
}

# ---------------------------------------------------------------- clubSandwich wrappers
cs_cr2 <- function(fit, cluster, coefs, ...) {
  V <- clubSandwich::vcovCR(fit, cluster = cluster, type = "CR2", ...)
  ct <- clubSandwich::coef_test(fit, vcov = V, test = "Satterthwaite", coefs = coefs)
  list(V = V, se = setNames(ct$SE, coefs), df = setNames(ct$df_Satt, coefs),
       p = setNames(ct$p_Satt, coefs))
}

# ---------------------------------------------------------------- one spec, clustered
# fit: lm on the full dummy design; coefs: names of the coefficients of interest;
# cluster: vector; K_cr1: fixest-nested K; notes: list(K_all=..., K_cr1=...)
clustered_spec <- function(fit, call, coefs, cluster, K_cr1, K_notes,
                           cr2 = c("clubSandwich", "by_hand"), extra = list(),
                           key = identity) {
  cr2 <- match.arg(cr2)
  N <- nobs(fit)
  K_all <- fit$rank
  G <- n_clusters(cluster)
  b <- coef(fit)[coefs]
  V_iid   <- vcov(fit)
  V_hc1   <- sandwich::vcovHC(fit, type = "HC1")
  V_cr0   <- sandwich::vcovCL(fit, cluster = cluster, type = "HC0", cadjust = FALSE)
  V_cr1g  <- sandwich::vcovCL(fit, cluster = cluster, type = "HC0", cadjust = TRUE)
  V_cr1   <- V_cr1g * (N - 1) / (N - K_cr1)
  V_cr1a  <- sandwich::vcovCL(fit, cluster = cluster, type = "HC1")
  r2 <- if (cr2 == "clubSandwich") cs_cr2(fit, cluster, coefs) else {
    h <- cr2_by_hand(fit, cluster, coefs)
    h$p <- p_t(b, h$se, h$df)
    h
  }
  nm <- key(coefs)
  kv <- function(x) one(setNames(unname(x), nm))
  se <- list(
    iid = kv(se_vec(V_iid, coefs)),
    HC1 = kv(se_vec(V_hc1, coefs)),
    CR0 = kv(se_vec(V_cr0, coefs)),
    CR1_G_only = kv(se_vec(V_cr1g, coefs)),
    CR1 = kv(se_vec(V_cr1, coefs)),
    CR1_all_dummies = kv(se_vec(V_cr1a, coefs)),
    CR2 = kv(r2$se)
  )
  p <- list(
    iid = kv(p_t(b, se_vec(V_iid, coefs), N - K_all)),
    HC1 = kv(p_t(b, se_vec(V_hc1, coefs), N - K_all)),
    CR1 = kv(p_t(b, se_vec(V_cr1, coefs), G - 1)),
    CR1_all_dummies = kv(p_t(b, se_vec(V_cr1a, coefs), G - 1)),
    CR2_satterthwaite = kv(r2$p)
  )
  out <- list(
    call = call,
    N = N, G = G, K_all = K_all, K_cr1 = K_cr1, K_notes = K_notes,
    coef = kv(b),
    se = se,
    df = list(iid = N - K_all, HC1 = N - K_all, CR1 = G - 1, CR1_all_dummies = G - 1,
              CR2_satterthwaite = kv(r2$df)),
    p_value = p,
    formulas = list(
      iid = "sigma^2 (X'X)^-1 with sigma^2 = RSS/(N - K_all); summary(lm)",
      HC1 = "N/(N - K_all) * HC0 (every dummy counted) = sandwich::vcovHC(type='HC1') = fixest 'hetero'",
      CR0 = "sum_g X_g'e_g e_g'X_g sandwich, no adjustment = vcovCL(type='HC0', cadjust=FALSE)",
      CR1_G_only = "G/(G-1) * CR0 = vcovCL(type='HC0', cadjust=TRUE)",
      CR1 = "G/(G-1) * (N-1)/(N-K_cr1) * CR0 (fixest default ssc: fixef.K='nested'); t df = G-1",
      CR1_all_dummies = "G/(G-1) * (N-1)/(N-K_all) * CR0 = vcovCL(type='HC1') = statsmodels cov_type='cluster'",
      CR2 = if (cr2 == "clubSandwich")
        "clubSandwich::vcovCR(fit, cluster, type='CR2') on the full dummy design; df/p from coef_test(test='Satterthwaite')"
      else
        "Bell-McCaffrey CR2 on the full dummy design computed by cr2_by_hand() (helpers.R), same formula as clubSandwich; Satterthwaite df by hand"
    )
  )
  modifyList(out, extra)
}

# ---------------------------------------------------------------- one spec, not clustered
robust_spec <- function(fit, call, coefs, extra = list(), all_coefs = TRUE) {
  N <- nobs(fit)
  K <- fit$rank
  b <- coef(fit)[coefs]
  Vs <- list(iid = vcov(fit),
             HC0 = sandwich::vcovHC(fit, type = "HC0"),
             HC1 = sandwich::vcovHC(fit, type = "HC1"),
             HC2 = sandwich::vcovHC(fit, type = "HC2"),
             HC3 = sandwich::vcovHC(fit, type = "HC3"))
  se <- lapply(Vs, function(V) one(se_vec(V, coefs)))
  p <- lapply(Vs, function(V) one(p_t(b, se_vec(V, coefs), N - K)))
  out <- list(
    call = call, N = N, K_all = K,
    coef = one(b),
    se = se,
    df = lapply(Vs, function(V) N - K),
    p_value = p,
    formulas = list(
      iid = "sigma^2 (X'X)^-1, sigma^2 = RSS/(N-K)",
      HC0 = "(X'X)^-1 X' diag(e^2) X (X'X)^-1",
      HC1 = "N/(N-K) * HC0 (Stata robust, fixest hetero)",
      HC2 = "e_i^2/(1-h_ii)",
      HC3 = "e_i^2/(1-h_ii)^2",
      p_value = "two-sided, Student t with N-K df for every type"
    )
  )
  if (all_coefs) {
    out$coef_all <- as.list(coef(fit))
    out$se_all <- list(iid = as.list(se_vec(vcov(fit), names(coef(fit)))),
                       HC1 = as.list(se_vec(Vs$HC1, names(coef(fit)))))
    out$r_squared <- summary(fit)$r.squared
  }
  modifyList(out, extra)
}
