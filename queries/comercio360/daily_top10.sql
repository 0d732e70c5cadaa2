-- Comercio360: for each UTC day, the 10 products with the highest revenue.
-- Input: a view `sales` over lander's bronze `sales` dataset (see README, "Downstream queries").
-- Revenue is sum(total) over rows whose status is 'Completada'. The day is the UTC day of `timestamp`, read from
-- bronze's year=/month=/day= partition columns (lander partitions by exactly that), so the result does not depend
-- on the engine's session time zone. Ties in revenue go to the lower product_id.
-- Portable SQL: runs unchanged in DuckDB and Spark SQL.
WITH daily AS (
  SELECT make_date(CAST(year AS INT), CAST(month AS INT), CAST(day AS INT)) AS sale_day,
         product_id,
         sum(total) AS revenue
  FROM sales
  WHERE status = 'Completada'
  GROUP BY year, month, day, product_id
),
ranked AS (
  SELECT sale_day,
         row_number() OVER (PARTITION BY sale_day ORDER BY revenue DESC, product_id ASC) AS product_rank,
         product_id,
         revenue
  FROM daily
)
SELECT sale_day AS day,
       product_rank AS rank,
       product_id,
       revenue
FROM ranked
WHERE product_rank <= 10
ORDER BY day, rank
