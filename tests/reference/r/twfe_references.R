#!/usr/bin/env Rscript
# Reference values for evalkit's two-way fixed effects / 2x2 DiD tests.
#
# Reads tests/reference/data/*.csv, writes tests/reference/values/*.json.
# Run from anywhere:  bash tests/reference/r/run_all.sh   (or Rscript this file)
# Needs R (>= 4.2) with sandwich, clubSandwich, lmtest, jsonlite (Debian: r-cran-*).
# Takes ~10 minutes on 2 cores (clubSandwich's Satterthwaite step on 505-column designs).
#
# Every regression is lm() on the FULL dummy-variable design (intercept + unit dummies +
# time dummies), so every SE type is computed on the model that fixest would absorb.

source(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1])),
                 "helpers.R"))

only <- commandArgs(trailingOnly = TRUE)   # optional: names of outputs to (re)build
want <- function(name) length(only) == 0 || name %in% only

# ============================================================== mpdta
read_mpdta <- function() {
  m <- read.csv(data_path("mpdta.csv"), check.names = FALSE)
  m <- m[order(m$countyreal, m$year), ]
  m$d <- as.integer(m$first.treat > 0 & m$year >= m$first.treat)
  m$lpop_trend <- m$lpop * (m$year - 2005)
  m$w_pop <- exp(m$lpop) / mean(exp(m$lpop))
  m$grp12 <- m$countyreal %% 12
  m
}

MPDTA_PREP <- paste(
  "m <- read.csv('tests/reference/data/mpdta.csv', check.names = FALSE);",
  "m$d <- as.integer(m$`first.treat` > 0 & m$year >= m$`first.treat`);",
  "m$lpop_trend <- m$lpop * (m$year - 2005);",
  "m$w_pop <- exp(m$lpop) / mean(exp(m$lpop));",
  "m$grp12 <- m$countyreal %% 12"
)

# CR2 of the same fit computed with the nested fixed effects absorbed (partialled out)
# instead of entered as dummies: a cross-check of Pustejovsky & Tipton (2018)'s result that
# CR2 is unchanged when the absorbed effects are nested in the clusters.
absorbed_cr2 <- function(m, cluster, weights = NULL) {
  demean_by <- function(v, g) v - ave(v, g)
  yd <- demean_by(m$lemp, m$countyreal)
  Xd <- cbind(d = demean_by(m$d, m$countyreal),
              sapply(2004:2007, function(t) demean_by(as.numeric(m$year == t), m$countyreal)))
  colnames(Xd) <- c("d", paste0("y", 2004:2007))
  dd1 <- data.frame(yd = yd, Xd)
  f1 <- lm(yd ~ d + y2004 + y2005 + y2006 + y2007 - 1, data = dd1)
  a <- cr2_by_hand(f1, cluster, "d")
  # both effects absorbed: two-way demeaned d only (balanced panel => double demeaning)
  dd <- m$d - ave(m$d, m$countyreal) - ave(m$d, m$year) + mean(m$d)
  yy <- m$lemp - ave(m$lemp, m$countyreal) - ave(m$lemp, m$year) + mean(m$lemp)
  f2 <- lm(yy ~ dd - 1)
  b <- cr2_by_hand(f2, cluster, "dd")
  list(
    CR2_county_absorbed_year_dummies = list(se = unname(a$se), satterthwaite_df = unname(a$df),
      how = "county effects partialled out (within-county demeaning of lemp, d and the 4 year dummies), OLS on [d, year dummies] without intercept, CR2 by hand on that 5-column design"),
    CR2_both_absorbed = list(se = unname(b$se), satterthwaite_df = unname(b$df),
      how = "two-way demeaned lemp on two-way demeaned d (1 column), CR2 by hand on that 1-column design (hat matrix ignores both sets of effects)")
  )
}

build_mpdta_twfe <- function() {
  m <- read_mpdta()
  specs <- list()
  fml <- lemp ~ d + factor(countyreal) + factor(year)
  fit <- lm(fml, data = m)
  K_notes_cty <- list(
    K_all = "505 = intercept + d + 499 county dummies + 4 year dummies",
    K_cr1 = "6 = d + 5 year levels (fixest counts the intercept/first level once); the 500 county effects are nested in the county clusters and not counted"
  )

  # (a) baseline TWFE, clustered by county ----------------------------------
  s <- clustered_spec(fit, paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + factor(countyreal) + factor(year), data = m); cluster = m$countyreal"),
                      "d", m$countyreal, K_cr1 = 6, K_notes = K_notes_cty)
  s$fixest_equivalent <- "feols(lemp ~ d | countyreal + year, m, cluster = ~countyreal)  [CR1]"
  s$cross_checks <- absorbed_cr2(m, m$countyreal)
  specs$twfe_cluster_county <- s

  # (a') TWFE + time-varying covariate --------------------------------------
  fit_c <- lm(lemp ~ d + lpop_trend + factor(countyreal) + factor(year), data = m)
  s <- clustered_spec(fit_c, paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + lpop_trend + factor(countyreal) + factor(year), data = m); cluster = m$countyreal"),
                      c("d", "lpop_trend"), m$countyreal, K_cr1 = 7,
                      K_notes = list(K_all = "506 = intercept + d + lpop_trend + 499 county + 4 year dummies",
                                     K_cr1 = "7 = d + lpop_trend + 5 year levels; county effects nested in clusters"))
  s$note <- "lpop_trend = lpop * (year - 2005): a constructed time-varying covariate (lpop is time-invariant, so lpop itself is absorbed by the county effects)"
  specs$twfe_covariate_cluster_county <- s

  # (a'') no county FE: year FE + lpop, clustered by county -------------------
  fit_p <- lm(lemp ~ d + lpop + factor(year), data = m)
  s <- clustered_spec(fit_p, paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + lpop + factor(year), data = m); cluster = m$countyreal"),
                      c("d", "lpop"), m$countyreal, K_cr1 = 7,
                      K_notes = list(K_all = "7 = intercept + d + lpop + 4 year dummies",
                                     K_cr1 = "7 = same: year effects are not nested in county clusters, so fixest counts all 5 year levels"))
  s$fixest_equivalent <- "feols(lemp ~ d + lpop | year, m, cluster = ~countyreal)  [CR1]"
  specs$year_fe_lpop_cluster_county <- s

  # (a''') weighted TWFE ----------------------------------------------------
  fit_w <- lm(fml, data = m, weights = w_pop)
  s <- clustered_spec(fit_w, paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + factor(countyreal) + factor(year), data = m, weights = w_pop); cluster = m$countyreal"),
                      "d", m$countyreal, K_cr1 = 6, K_notes = K_notes_cty, cr2 = "by_hand")
  # the two clubSandwich targets for a weighted lm, and the sqrt(w)-transformed OLS
  h_iv <- cr2_by_hand(fit_w, m$countyreal, "d", Phi = 1 / m$w_pop)
  Xt <- model.matrix(fit_w) * sqrt(m$w_pop)
  fit_t <- lm(I(m$lemp * sqrt(m$w_pop)) ~ Xt - 1)
  h_tr <- cr2_by_hand(fit_t, m$countyreal, "Xtd")
  s$se$CR2_inverse_var <- unname(h_iv$se)
  s$df$CR2_inverse_var_satterthwaite <- unname(h_iv$df)
  s$p_value$CR2_inverse_var_satterthwaite <- p_t(coef(fit_w)[["d"]], h_iv$se, h_iv$df)[[1]]
  s$cross_checks <- list(
    CR2_sqrtw_transformed_ols = list(se = unname(h_tr$se), satterthwaite_df = unname(h_tr$df),
      how = "unweighted CR2 on y*sqrt(w), X*sqrt(w) (estimatr-style); equals CR2_inverse_var because the weights are constant within each county cluster"),
    CR2_clubSandwich_vcov_se = sqrt(clubSandwich::vcovCR(fit_w, cluster = m$countyreal, type = "CR2")["d", "d"])
  )
  if (nzchar(Sys.getenv("REF_FULL_CLUBSANDWICH"))) {
    # optional (12 min, ~10 GB): clubSandwich's own Satterthwaite df for this fit
    cs <- cs_cr2(fit_w, m$countyreal, "d")
    s$cross_checks$CR2_clubSandwich_coef_test <- list(se = unname(cs$se), satterthwaite_df = unname(cs$df),
                                                      p = unname(cs$p))
  }
  s$weights <- "w_pop = exp(lpop)/mean(exp(lpop)) (county population share, constant within county). Every SE here is invariant to rescaling the weights."
  s$formulas$CR2 <- paste(
    "clubSandwich default for a weighted lm: vcovCR(fit, cluster, type='CR2') with target = NULL and",
    "inverse_var = FALSE, i.e. working covariance Phi = I (weights are NOT treated as inverse variances):",
    "A_g = [((I-H)(I-H)')_gg]^{-1/2}, H = X (X'WX)^-1 X'W, meat = sum_g X_g'W_g A_g e_g e_g' A_g W_g X_g.",
    "Computed by cr2_by_hand() (helpers.R) because clubSandwich's Satterthwaite step needs >10 GB here;",
    "the SE equals clubSandwich's vcovCR (cross_checks.CR2_clubSandwich_vcov_se) and the by-hand code",
    "reproduces clubSandwich's SE and df on the 12-cluster weighted fit (see twfe_weighted_cluster_grp12).")
  s$formulas$CR2_inverse_var <- paste(
    "vcovCR(fit, cluster, type='CR2', inverse_var = TRUE): Phi = W^-1;",
    "A_g = D_g'[D_g((I-H)Phi(I-H)')_gg D_g']^{-1/2} D_g with D_g = W_g^{-1/2}.")
  specs$twfe_weighted_cluster_county <- s

  # (c) two-way clustering county x year ------------------------------------
  N <- nobs(fit)
  cl2 <- m[, c("countyreal", "year")]
  V1 <- sandwich::vcovCL(fit, cluster = m$countyreal, type = "HC0", cadjust = FALSE)["d", "d"]
  V2 <- sandwich::vcovCL(fit, cluster = m$year, type = "HC0", cadjust = FALSE)["d", "d"]
  V12 <- sandwich::vcovHC(fit, type = "HC0")["d", "d"]   # county x year cells are single obs
  G1 <- 500; G2 <- 5; G12 <- 2500; Gmin <- min(G1, G2)
  V_conv_sandwich <- sandwich::vcovCL(fit, cluster = cl2, type = "HC0", cadjust = TRUE, multi0 = FALSE)["d", "d"]
  V_conv_multi0 <- sandwich::vcovCL(fit, cluster = cl2, type = "HC0", cadjust = TRUE, multi0 = TRUE)["d", "d"]
  V_hc1_sandwich <- sandwich::vcovCL(fit, cluster = cl2, type = "HC1", cadjust = TRUE, multi0 = FALSE)["d", "d"]
  K_fx <- 2
  V_fixest <- (V1 + V2 - V12) * Gmin / (Gmin - 1) * (N - 1) / (N - K_fx)
  V_fixest_conv <- (G1 / (G1 - 1) * V1 + G2 / (G2 - 1) * V2 - G12 / (G12 - 1) * V12) * (N - 1) / (N - K_fx)
  b <- coef(fit)[["d"]]
  specs$twfe_twoway_cluster_county_year <- list(
    call = paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + factor(countyreal) + factor(year), data = m);",
                 "sandwich::vcovCL(fit, cluster = m[, c('countyreal', 'year')], type = 'HC0', cadjust = TRUE, multi0 = FALSE)"),
    N = N, G = list(countyreal = G1, year = G2, countyreal_x_year = G12, min = Gmin),
    K_all = fit$rank, K_cr1 = K_fx,
    K_notes = list(K_all = "505 (full dummy design)",
                   K_cr1 = "2 = d + 1: fixest with fixef.K='nested' finds BOTH fixed effects nested in a cluster variable (county in county, year in year), removes all their levels and adds 1 for the intercept"),
    coef = b,
    variance_components = list(
      V_county_CR0 = V1, V_year_CR0 = V2, V_county_x_year_CR0 = V12,
      note = "d-element of the unadjusted (HC0-type) cluster sandwiches; county x year cells are single observations so V_county_x_year_CR0 = HC0"),
    se = list(
      twoway_fixest = sqrt(V_fixest),
      twoway_fixest_conventional = sqrt(V_fixest_conv),
      twoway_sandwich_HC0_cadjust = sqrt(V_conv_sandwich),
      twoway_sandwich_HC0_cadjust_multi0 = sqrt(V_conv_multi0),
      twoway_sandwich_HC1 = sqrt(V_hc1_sandwich),
      twoway_CR0 = sqrt(V1 + V2 - V12),
      CR1_county_only = sqrt(V1 * G1 / (G1 - 1) * (N - 1) / (N - 6)),
      CR1_year_only = sqrt(V2 * G2 / (G2 - 1) * (N - 1) / (N - 6))
    ),
    df = list(twoway_fixest = Gmin - 1, twoway_fixest_conventional = Gmin - 1,
              CR1_county_only = G1 - 1, CR1_year_only = G2 - 1),
    p_value = list(twoway_fixest = p_t(b, sqrt(V_fixest), Gmin - 1),
                   twoway_fixest_conventional = p_t(b, sqrt(V_fixest_conv), Gmin - 1),
                   twoway_sandwich_HC0_cadjust_normal = 2 * pnorm(-abs(b / sqrt(V_conv_sandwich)))),
    formulas = list(
      twoway_fixest = "fixest default (ssc cluster.df='min', fixef.K='nested', t.df='min'): (V_county + V_year - V_county_x_year) * Gmin/(Gmin-1) * (N-1)/(N-K), Gmin = min(500, 5) = 5, K = 2; t df = Gmin - 1 = 4. fixest applies one Gmin/(Gmin-1) to the whole sum (including the subtracted intersection term).",
      twoway_fixest_conventional = "fixest ssc(cluster.df='conventional'): (G1/(G1-1) V_county + G2/(G2-1) V_year - G12/(G12-1) V_county_x_year) * (N-1)/(N-K), K = 2",
      twoway_sandwich_HC0_cadjust = "sandwich::vcovCL(cluster = ~countyreal + year, type='HC0', cadjust=TRUE, multi0=FALSE) = 500/499 V_county + 5/4 V_year - 2500/2499 V_county_x_year (each term its own G/(G-1); no (N-1)/(N-K) factor) -- CGM (2011) with per-term adjustment",
      twoway_sandwich_HC0_cadjust_multi0 = "same with multi0=TRUE: the intersection term is plain HC0 (no 2500/2499)",
      twoway_sandwich_HC1 = "vcovCL(type='HC1', multi0=FALSE) = twoway_sandwich_HC0_cadjust * (N-1)/(N-K_all), K_all = 505 (= statsmodels cov_type='cluster' with a 2-column groups array)",
      twoway_CR0 = "V_county + V_year - V_county_x_year, no adjustment",
      eigen_fix = "none needed: every variance here is positive (fixest would apply the Cameron-Gelbach-Miller eigenvalue fix only if a diagonal element were negative)"
    )
  )

  # (f) few clusters: 12 groups of counties, county FE nested ---------------
  s <- clustered_spec(fit, paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + factor(countyreal) + factor(year), data = m); cluster = m$grp12  # countyreal %% 12"),
                      "d", m$grp12, K_cr1 = 6,
                      K_notes = list(K_all = "505 = intercept + d + 499 county + 4 year dummies",
                                     K_cr1 = "6 = d + 5 year levels; the county effects are nested in the 12 clusters (each county lies in one group), the year effects are not"))
  s$cluster_sizes_obs <- as.list(table(m$grp12))
  s$fixest_equivalent <- "feols(lemp ~ d | countyreal + year, m, cluster = ~grp12)  [CR1]"
  s$cross_checks <- absorbed_cr2(m, m$grp12)
  s$note <- "clusters = countyreal %% 12; very unequal sizes (5 to 490 observations; county ids are mostly odd)"
  specs$twfe_cluster_grp12 <- s

  # (f') the same, weighted: validates cr2_by_hand against clubSandwich for weights
  s <- clustered_spec(fit_w, paste(MPDTA_PREP, "; fit <- lm(lemp ~ d + factor(countyreal) + factor(year), data = m, weights = w_pop); cluster = m$grp12"),
                      "d", m$grp12, K_cr1 = 6, K_notes = K_notes_cty)
  cs_iv <- cs_cr2(fit_w, m$grp12, "d", inverse_var = TRUE)
  h_def <- cr2_by_hand(fit_w, m$grp12, "d")
  h_iv <- cr2_by_hand(fit_w, m$grp12, "d", Phi = 1 / m$w_pop)
  h_tr <- cr2_by_hand(fit_t, m$grp12, "Xtd")
  s$se$CR2_inverse_var <- unname(cs_iv$se)
  s$df$CR2_inverse_var_satterthwaite <- unname(cs_iv$df)
  s$p_value$CR2_inverse_var_satterthwaite <- unname(cs_iv$p)
  s$cross_checks <- list(
    CR2_by_hand = list(se = unname(h_def$se), satterthwaite_df = unname(h_def$df)),
    CR2_inverse_var_by_hand = list(se = unname(h_iv$se), satterthwaite_df = unname(h_iv$df)),
    CR2_sqrtw_transformed_ols = list(se = unname(h_tr$se), satterthwaite_df = unname(h_tr$df),
      how = "unweighted CR2 on sqrt(w)-transformed data; differs from CR2_inverse_var here because weights vary within the 12 clusters (different matrix square roots)")
  )
  s$weights <- "w_pop = exp(lpop)/mean(exp(lpop))"
  s$formulas$CR2 <- "clubSandwich vcovCR(fit, cluster, type='CR2') on the weighted lm: default target Phi = I (inverse_var = FALSE)"
  s$formulas$CR2_inverse_var <- "clubSandwich vcovCR(..., inverse_var = TRUE): Phi = W^-1"
  specs$twfe_weighted_cluster_grp12 <- s

  list(meta = make_meta("mpdta.csv",
         "mpdta (Callaway & Sant'Anna 2021 minimum-wage panel): TWFE DiD lemp ~ d | county + year with every SE convention"),
       specs = specs)
}

build_mpdta_event_study <- function() {
  m <- read_mpdta()
  m$e <- ifelse(m$first.treat > 0, m$year - m$first.treat, NA)
  ev <- sort(setdiff(unique(na.omit(m$e)), -1))            # -4..3 without -1
  nm <- ifelse(ev < 0, paste0("ev_m", abs(ev)), paste0("ev_", ev))
  for (i in seq_along(ev)) m[[nm[i]]] <- as.integer(!is.na(m$e) & m$e == ev[i])
  fml <- as.formula(paste("lemp ~", paste(nm, collapse = " + "), "+ factor(countyreal) + factor(year)"))
  fit <- lm(fml, data = m)
  key <- function(x) as.character(ev[match(x, nm)])
  call <- paste(MPDTA_PREP, "; m$e <- ifelse(m$`first.treat` > 0, m$year - m$`first.treat`, NA);",
                "for (k in c(-4,-3,-2,0,1,2,3)) m[[if (k < 0) paste0('ev_m', -k) else paste0('ev_', k)]] <- as.integer(!is.na(m$e) & m$e == k);",
                "fit <- lm(", deparse1(fml), ", data = m); cluster = m$countyreal")
  s <- clustered_spec(fit, call, nm, m$countyreal, K_cr1 = length(nm) + 5,
                      K_notes = list(K_all = "511 = intercept + 7 event-time dummies + 499 county + 4 year dummies",
                                     K_cr1 = "12 = 7 event-time dummies + 5 year levels; county effects nested in the county clusters"),
                      key = key)
  s$event_time_definition <- "e = year - first.treat for treated counties (first.treat > 0); never-treated counties have all event dummies 0; e = -1 is the omitted reference; observed e: -4..3"
  s$dummy_names <- as.list(setNames(nm, as.character(ev)))
  s$n_obs_by_event_time <- as.list(table(m$e))

  # joint Wald test of the pre-period coefficients (e = -4, -3, -2) = 0
  pre <- nm[ev < 0]
  N <- nobs(fit); G <- 500; K_all <- fit$rank; q <- length(pre)
  V_cr1 <- sandwich::vcovCL(fit, cluster = m$countyreal, type = "HC0", cadjust = TRUE) * (N - 1) / (N - 12)
  b <- coef(fit)[pre]
  W <- drop(t(b) %*% solve(V_cr1[pre, pre]) %*% b)
  V_cr2 <- clubSandwich::vcovCR(fit, cluster = m$countyreal, type = "CR2")
  htz <- clubSandwich::Wald_test(fit, constraints = clubSandwich::constrain_zero(pre), vcov = V_cr2,
                                 test = c("HTZ", "chi-sq"))
  s$pretrend_wald <- list(
    hypothesis = "coefficients of e = -4, -3, -2 all zero",
    q = q,
    CR1 = list(
      chi2 = W, chi2_df = q, chi2_p = pchisq(W, q, lower.tail = FALSE),
      F = W / q, F_df1 = q,
      F_df2_G_minus_1 = G - 1, F_p_G_minus_1 = pf(W / q, q, G - 1, lower.tail = FALSE),
      F_df2_N_minus_K_all = N - K_all, F_p_N_minus_K_all = pf(W / q, q, N - K_all, lower.tail = FALSE),
      vcov = "CR1 (fixest convention, K = 12)",
      note = "Wald statistic W = b' V^-1 b with V = CR1 block of the 3 pre-period coefficients. F = W/q. fixest::wald() reports F with df2 = nobs - nparams = N - K_all (here 1989) even for clustered VCOVs; F(q, G-1) is the Stata 'test' convention after clustering."
    ),
    CR2_HTZ = list(
      Fstat = htz$Fstat[htz$test == "HTZ"], df_num = htz$df_num[htz$test == "HTZ"],
      df_denom = htz$df_denom[htz$test == "HTZ"], p = htz$p_val[htz$test == "HTZ"],
      chi2_naive_Fstat = htz$Fstat[htz$test == "chi-sq"], chi2_naive_p = htz$p_val[htz$test == "chi-sq"],
      how = "clubSandwich::Wald_test(fit, constrain_zero(pre), vcov = vcovCR(fit, cluster, 'CR2'), test = c('HTZ','chi-sq')); 'chi-sq' row: Fstat = W/q with the CR2 vcov, p from chi2(q)"
    )
  )
  list(meta = make_meta("mpdta.csv",
         "mpdta: TWFE event study lemp ~ relative-time dummies (ref e = -1) | county + year"),
       specs = list(event_study_cluster_county = s))
}

# ============================================================== Card & Krueger
build_card_krueger <- function() {
  ck <- read.csv(data_path("card_krueger.csv"))
  ok <- tapply(!is.na(ck$fte), ck$store_id, sum) == 2
  b <- ck[ck$store_id %in% as.integer(names(ok)[ok]), ]
  b <- b[order(b$store_id, b$wave), ]
  b$d <- b$nj * b$wave
  prep <- paste("ck <- read.csv('tests/reference/data/card_krueger.csv');",
                "ok <- tapply(!is.na(ck$fte), ck$store_id, sum) == 2;",
                "b <- ck[ck$store_id %in% as.integer(names(ok)[ok]), ]; b$d <- b$nj * b$wave")
  fit <- lm(fte ~ d + factor(store_id) + factor(wave), data = b)
  s <- clustered_spec(fit, paste(prep, "; fit <- lm(fte ~ d + factor(store_id) + factor(wave), data = b); cluster = b$store_id"),
                      "d", b$store_id, K_cr1 = 3,
                      K_notes = list(K_all = "386 = intercept + d + 383 store dummies + 1 wave dummy",
                                     K_cr1 = "3 = d + 2 wave levels; store effects nested in store clusters"))
  chg <- with(b, tapply(fte[wave == 1], store_id[wave == 1], sum) - tapply(fte[wave == 0], store_id[wave == 0], sum))
  nj <- tapply(b$nj, b$store_id, max)[names(chg)]
  welch <- t.test(chg[nj == 1], chg[nj == 0])
  s$sample <- list(stores = length(chg), rows = nrow(b), PA = sum(nj == 0), NJ = sum(nj == 1))
  s$published <- list(source = "Card & Krueger (1994) Table 3 row 4 (balanced sample): NJ - PA change in mean FTE 2.75 (1.34)",
                      coef = 2.75, se = 1.34)
  s$cross_checks <- list(
    welch_diff_in_mean_changes = unname(welch$estimate[1] - welch$estimate[2]),
    welch_se = unname(welch$stderr),
    welch_df = unname(welch$parameter),
    note = "Welch (unequal-variance) SE of the difference in mean changes = CR2 clustered by store of the TWFE fit"
  )
  s$fixest_equivalent <- "feols(fte ~ d | store_id + wave, b, cluster = ~store_id)  [CR1]"

  fit2 <- lm(fte ~ nj + wave + d, data = b)
  s2 <- clustered_spec(fit2, paste(prep, "; fit <- lm(fte ~ nj + wave + d, data = b); cluster = b$store_id"),
                       "d", b$store_id, K_cr1 = 4,
                       K_notes = list(K_all = "4 = intercept + nj + wave + d", K_cr1 = "4 = same (no fixed effects)"))
  s2$note <- "pooled 2x2 DiD regression on the balanced panel: same coefficient as the TWFE fit, different clustered SEs (K and hat matrix differ)"

  list(meta = make_meta("card_krueger.csv",
         "Card & Krueger (1994) NJ/PA fast-food panel, balanced sample (384 stores x 2 waves)"),
       specs = list(twfe_cluster_store = s, pooled_2x2_cluster_store = s2))
}

# ============================================================== Wooldridge: kielmc
build_kielmc <- function() {
  k <- read.csv(data_path("kielmc.csv"))
  prep <- "k <- read.csv('tests/reference/data/kielmc.csv'); "
  pub <- function(coef, se, what) list(source = paste("Wooldridge, Introductory Econometrics, Example 13.3 (Kiel & McClain incinerator):", what),
                                       coef = coef, se = se)
  ctrl <- "age + agesq + intst + land + area + rooms + baths"
  lctrl <- "age + agesq + lintst + lland + larea + rooms + baths"
  mk <- function(f, published, desc) {
    fit <- lm(as.formula(f), data = k)
    robust_spec(fit, paste0(prep, "fit <- lm(", f, ", data = k)"), "y81nrinc",
                extra = list(published = pub(published[1], published[2], desc)))
  }
  specs <- list(
    rprice_2x2 = mk("rprice ~ y81 + nearinc + y81nrinc", c(-11863.9, 7456.6),
                    "rprice (1978 dollars) on y81, nearinc, y81*nearinc: -11,863.9 (7,456.6), n = 321, R2 = .174"),
    rprice_2x2_age = mk("rprice ~ y81 + nearinc + y81nrinc + age + agesq", c(-21920.27, 6359.75),
                        "adding age, age^2: -21,920.27 (6,359.75), R2 = .414"),
    rprice_2x2_full = mk(paste("rprice ~ y81 + nearinc + y81nrinc +", ctrl), c(-14177.93, 4987.27),
                         "adding age, age^2, intst, land, area, rooms, baths: -14,177.93 (4,987.27), R2 = .660"),
    lprice_2x2 = mk("lprice ~ y81 + nearinc + y81nrinc", c(-0.063, 0.083),
                    "log(price) on y81, nearinc, y81*nearinc: -.063 (.083)"),
    lprice_2x2_full = mk(paste("lprice ~ y81 + nearinc + y81nrinc +", lctrl), c(-0.132, 0.052),
                         "log(price) adding age, age^2, log(intst), log(land), log(area), rooms, baths: -.132 (.052), R2 = .790")
  )
  # few-cluster illustration (not in the textbook): 7 neighbourhoods
  for (nm in c("rprice_2x2", "rprice_2x2_full")) {
    f <- if (nm == "rprice_2x2") "rprice ~ y81 + nearinc + y81nrinc" else paste("rprice ~ y81 + nearinc + y81nrinc +", ctrl)
    fit <- lm(as.formula(f), data = k)
    s <- clustered_spec(fit, paste0(prep, "fit <- lm(", f, ", data = k); cluster = k$nbh"),
                        "y81nrinc", k$nbh, K_cr1 = fit$rank,
                        K_notes = list(K_all = paste(fit$rank, "= every column (intercept included)"),
                                       K_cr1 = "same as K_all (no fixed effects)"))
    s$note <- "clustered by neighbourhood nbh (7 clusters, 0-6; nearinc varies within only 2 of them) -- an illustration of few-cluster CR2/Satterthwaite, not a published analysis"
    s$cluster_sizes_obs <- as.list(table(k$nbh))
    specs[[paste0(nm, "_cluster_nbh")]] <- s
  }
  list(meta = make_meta("kielmc.csv",
         "Kiel & McClain (1995) house prices near an incinerator, North Andover MA; repeated cross-section 1978/1981 (Wooldridge Example 13.3)"),
       specs = specs)
}

# ============================================================== Wooldridge: injury
build_injury <- function() {
  d <- read.csv(data_path("injury.csv"))
  prep <- "d <- read.csv('tests/reference/data/injury.csv'); "
  mk <- function(state, published, desc) {
    sub <- d[d[[state]] == 1, ]
    fit <- lm(ldurat ~ afchnge + highearn + afhigh, data = sub)
    robust_spec(fit, paste0(prep, "fit <- lm(ldurat ~ afchnge + highearn + afhigh, data = subset(d, ", state, " == 1))"),
                "afhigh", extra = list(published = list(
                  source = paste("Wooldridge, Introductory Econometrics, Example 13.4 (Meyer, Viscusi & Durbin 1995 workers' compensation):", desc),
                  coef = published[1], se = published[2])))
  }
  list(meta = make_meta("injury.csv",
         "Meyer, Viscusi & Durbin (1995): log duration of workers' comp benefits, before/after the 1980 benefit-cap increase, high vs low earners (Wooldridge Example 13.4); repeated cross-section, no natural cluster"),
       specs = list(
         kentucky_2x2 = mk("ky", c(0.191, 0.069), "Kentucky: afchnge*highearn .191 (.069), n = 5,626, R2 = .021"),
         michigan_2x2 = mk("mi", c(0.192, 0.154), "Michigan: afchnge*highearn .192 (.154), n = 1,524, R2 = .012")
       ))
}

# ============================================================== run
jobs <- list(mpdta_twfe = build_mpdta_twfe,
             mpdta_event_study = build_mpdta_event_study,
             card_krueger_twfe = build_card_krueger,
             kielmc_2x2 = build_kielmc,
             injury_2x2 = build_injury)
for (name in names(jobs)) {
  if (!want(name)) next
  t0 <- proc.time()[["elapsed"]]
  write_json_file(jobs[[name]](), name)
  message(sprintf("  %s: %.0f s", name, proc.time()[["elapsed"]] - t0))
}
