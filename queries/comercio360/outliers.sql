-- Comercio360: days whose revenue is unusually high against the preceding month.
-- Input: a view `sales` over lander's bronze `sales` dataset (see README, "Downstream queries").
-- A day's revenue is sum(total) over its rows whose status is 'Completada'; days with no completed sale have no
-- revenue row and are not "days with data". A day is an outlier when its revenue exceeds mean + 2 * sample
-- standard deviation of the daily revenues of the (up to 30) days with data among the 30 calendar days before
-- it, and at least 7 such days exist. Days are UTC, from bronze's year=/month=/day= partition columns.
-- Portable SQL: runs unchanged in DuckDB and Spark SQL.
WITH daily AS (
  SELECT make_date(CAST(year AS INT), CAST(month AS INT), CAST(day AS INT)) AS sale_day,
         sum(total) AS revenue
  FROM sales
  WHERE status = 'Completada'
  GROUP BY year, month, day
),
history AS (
  SELECT d.sale_day,
         d.revenue,
         avg(p.revenue) AS mean_30d,
         stddev_samp(p.revenue) AS std_30d,
         count(*) AS days_30d
  FROM daily d
  JOIN daily p
    ON p.sale_day < d.sale_day
   AND p.sale_day >= d.sale_day - INTERVAL 30 DAYS
  GROUP BY d.sale_day, d.revenue
)
SELECT sale_day AS day,
       revenue,
       mean_30d,
       std_30d
FROM history
WHERE days_30d >= 7
  AND revenue > mean_30d + 2 * std_30d
ORDER BY day
