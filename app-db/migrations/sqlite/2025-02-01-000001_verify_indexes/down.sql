DROP INDEX datasets_team_id_nn_idx;
