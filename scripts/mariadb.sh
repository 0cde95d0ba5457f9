#!/usr/bin/env bash
# Makes sure a MariaDB server answers at 127.0.0.1:3306 as root with an empty
# password and has a database "test", which is what the tests, the demo and
# the benchmark use by default. Installs mariadb-server with apt-get when it
# is missing and starts mariadbd when nothing answers. Needs root for both.
set -euo pipefail

port=${PUSHD_DB_PORT:-3306}

answers() { mysql --protocol=tcp -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1' >/dev/null 2>&1; }

if ! answers; then
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "mariadb.sh: installing mariadb-server" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq mariadb-server mariadb-client >/dev/null
  fi
  if ! answers; then
    echo "mariadb.sh: starting mariadbd" >&2
    install -d -o mysql -g mysql /run/mysqld
    if [ ! -d /var/lib/mysql/mysql ]; then
      mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    fi
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql --port="$port" --bind-address=127.0.0.1
    for _ in $(seq 1 60); do
      answers && break
      # A fresh Debian install lets root in by unix socket only: open TCP.
      if mysql -uroot -e 'SELECT 1' >/dev/null 2>&1; then
        mysql -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
          GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
          ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING PASSWORD('');
          FLUSH PRIVILEGES;" || true
      fi
      sleep 1
    done
  fi
fi
answers || { echo "mariadb.sh: MariaDB does not answer on 127.0.0.1:$port" >&2; exit 1; }
mysql --protocol=tcp -h127.0.0.1 -P"$port" -uroot -e 'CREATE DATABASE IF NOT EXISTS test'
