-- The jobs table is a queue: rows are inserted and deleted all day while few are live at
-- any moment. The default trigger (20 % of the live rows) would let dead tuples pile up
-- between autovacuum rounds; vacuum it after a fixed number of dead rows instead, and let
-- that vacuum work faster.
alter table jobs set (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_limit = 2000,
    autovacuum_analyze_scale_factor = 0,
    autovacuum_analyze_threshold = 5000
);
