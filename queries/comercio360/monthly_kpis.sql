-- Comercio360: KPIs per UTC month and product category.
-- Input: a view `sales` over lander's bronze `sales` dataset (see README, "Downstream queries").
-- Only rows whose status is 'Completada' count. The month is the UTC month of `timestamp`, read from bronze's
-- year=/month= partition columns (lander partitions by exactly that), so the result does not depend on the
-- engine's session time zone. Bronze holds one row per transaction_id, so orders = rows.
-- Portable SQL: runs unchanged in DuckDB and Spark SQL.
WITH completed AS (
  SELECT substr(CAST(make_date(CAST(year AS INT), CAST(month AS INT), 1) AS STRING), 1, 7) AS sale_month,
         category,
         customer_id,
         total
  FROM sales
  WHERE status = 'Completada'
)
SELECT sale_month AS month,
       category,
       count(DISTINCT customer_id) AS customers,
       count(*) AS orders,
       sum(total) AS revenue,
       sum(total) / count(*) AS avg_ticket
FROM completed
GROUP BY sale_month, category
ORDER BY month, category
