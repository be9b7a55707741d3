package io.ringscope.launcher;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import org.neo4j.configuration.GraphDatabaseInternalSettings;
import org.neo4j.configuration.GraphDatabaseSettings;
import org.neo4j.configuration.connectors.BoltConnector;
import org.neo4j.configuration.connectors.HttpConnector;
import org.neo4j.configuration.connectors.HttpsConnector;
import org.neo4j.configuration.helpers.SocketAddress;
import org.neo4j.dbms.api.DatabaseManagementService;
import org.neo4j.dbms.api.DatabaseManagementServiceBuilder;
import org.neo4j.graphdb.GraphDatabaseService;
import org.neo4j.io.ByteUnit;
import org.neo4j.server.configuration.ConfigurableServerModules;
import org.neo4j.server.configuration.ServerSettings;

/**
 * Runs Neo4j Community embedded, with one Bolt connector bound to 127.0.0.1 only.
 *
 * <p>Arguments: {@code --home DIR --port N --pagecache SIZE --password-file FILE [--recv-timeout
 * SECONDS] [--http-port N]}. With {@code --http-port}, Neo4j's own HTTP connector is on too, on
 * 127.0.0.1 only, serving Neo4j Browser at /browser/ (from the neo4j-browser jar on the
 * classpath), the discovery document at / and the transactional Cypher endpoint; without it there
 * is no HTTP listener at all. Auth is on for both connectors: on the first start the built-in
 * {@code neo4j} user gets the password read from the file, which the Python side generated with
 * mode 0600. The password never appears on the command line.
 *
 * <p>Protocol with the Python side, on stdout: one line {@code RINGSCOPE-READY <uri>} once the
 * default database is available. On failure, one line {@code RINGSCOPE-ERROR <kind>: <message>} on
 * stderr and a non-zero exit: 3 = the store could not be opened, 4 = a port (Bolt or HTTP) is
 * taken, 2 = bad arguments, 1 = anything else. SIGTERM shuts the DBMS down cleanly so the store survives.
 */
public final class EmbeddedNeo4j {
  private EmbeddedNeo4j() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> opts = parse(args);
    Path home = Path.of(require(opts, "--home")).toAbsolutePath();
    int port = Integer.parseInt(require(opts, "--port"));
    String pagecache = opts.getOrDefault("--pagecache", "512m");
    // A keep-alive every second while a request runs; drivers drop a connection that stays silent
    // for recvTimeout seconds (the connection.recv_timeout_seconds hint is interval x probes).
    // Neo4j's default, 60 s x 2, left a read on a frozen server (SIGSTOP) hanging for 2 minutes.
    int recvTimeout = Math.max(1, Integer.parseInt(opts.getOrDefault("--recv-timeout", "4")));
    String password =
        Files.readString(Path.of(require(opts, "--password-file")), StandardCharsets.UTF_8).strip();
    // Transaction log files written whole ahead of use (Neo4j's default), unless told not to:
    // throwaway test stores each held 512 MiB of them.
    boolean preallocate = Boolean.parseBoolean(opts.getOrDefault("--tx-log-preallocate", "true"));
    String httpPortArg = opts.get("--http-port");
    int httpPort = httpPortArg == null ? -1 : Integer.parseInt(httpPortArg);

    DatabaseManagementService dbms;
    try {
      DatabaseManagementServiceBuilder builder =
          new DatabaseManagementServiceBuilder(home)
              .setConfig(BoltConnector.enabled, true)
              .setConfig(BoltConnector.listen_address, new SocketAddress("127.0.0.1", port))
              .setConfig(BoltConnector.advertised_address, new SocketAddress("127.0.0.1", port))
              .setConfig(HttpConnector.enabled, httpPort > 0)
              .setConfig(HttpsConnector.enabled, false)
              .setConfig(GraphDatabaseSettings.auth_enabled, true)
              .setConfig(GraphDatabaseSettings.udc_enabled, false)
              .setConfig(BoltConnector.connection_keep_alive, Duration.ofSeconds(1))
              .setConfig(BoltConnector.connection_keep_alive_probes, recvTimeout)
              // Netty waits a 5 s quiet period per event loop group on shutdown; nothing is in
              // flight after the databases have stopped, so one second is plenty.
              .setConfig(GraphDatabaseInternalSettings.netty_server_shutdown_quiet_period, 1)
              .setConfig(GraphDatabaseSettings.preallocate_logical_logs, preallocate)
              .setConfig(GraphDatabaseSettings.pagecache_memory, ByteUnit.parse(pagecache));
      if (httpPort > 0) {
        enableBrowser(builder, httpPort);
      }
      dbms = builder.build();
    } catch (Throwable e) {
      fail(isPortClash(e) ? 4 : 1, isPortClash(e) ? "port" : "start", describe(e));
      return;
    }
    CountDownLatch stopped = new CountDownLatch(1);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  dbms.shutdown();
                  stopped.countDown();
                },
                "ringscope-shutdown"));

    GraphDatabaseService system = dbms.database(GraphDatabaseSettings.SYSTEM_DATABASE_NAME);
    String problem = awaitDefaultDatabase(dbms, system);
    if (problem != null) {
      fail(
          3,
          "store",
          "database '"
              + GraphDatabaseSettings.DEFAULT_DATABASE_NAME
              + "' in "
              + home
              + " did not come online; the store may be corrupt: "
              + problem
              + " (see logs/debug.log there)");
      return;
    }
    setInitialPassword(system, password);
    System.out.println("RINGSCOPE-READY bolt://127.0.0.1:" + port);
    System.out.flush();
    stopped.await();
  }

  /**
   * Turns on Neo4j's own web server for Neo4j Browser. The embedded builder starts the same Jetty
   * server as the neo4j start script does (DatabaseManagementServiceFactory creates it whenever
   * the HTTP connector is enabled); neo4j-server is already on the classpath as a dependency of
   * the neo4j artifact, and the Browser module serves the {@code browser/} resources of the
   * neo4j-browser jar.
   *
   * <p>Only what the Browser needs is mounted: the Browser itself, and the transactional Cypher
   * endpoint (for HTTP clients and curl), not the Query API or unmanaged extensions. CORS allows
   * the Browser's own origin only, not Neo4j's default {@code *}, so a page from another site open
   * in the analyst's web browser cannot read the endpoint's answers. The Browser's usage telemetry
   * (client.allow_telemetry) is off.
   */
  private static void enableBrowser(DatabaseManagementServiceBuilder builder, int httpPort) {
    builder
        .setConfig(HttpConnector.listen_address, new SocketAddress("127.0.0.1", httpPort))
        .setConfig(HttpConnector.advertised_address, new SocketAddress("127.0.0.1", httpPort))
        .setConfig(
            ServerSettings.http_enabled_modules,
            Set.of(
                ConfigurableServerModules.BROWSER,
                ConfigurableServerModules.TRANSACTIONAL_ENDPOINTS))
        .setConfig(ServerSettings.http_access_control_allow_origin, "http://127.0.0.1:" + httpPort)
        .setConfig(ServerSettings.allow_telemetry, false);
  }

  /**
   * Waits until the default database is online. Returns null when it is, or the reason it failed:
   * a database that cannot start (a corrupt store) fails fast instead of waiting out a timeout.
   */
  private static String awaitDefaultDatabase(
      DatabaseManagementService dbms, GraphDatabaseService system) throws InterruptedException {
    GraphDatabaseService db = dbms.database(GraphDatabaseSettings.DEFAULT_DATABASE_NAME);
    long deadline = System.currentTimeMillis() + 600_000;
    while (System.currentTimeMillis() < deadline) {
      if (db.isAvailable(500)) {
        return null;
      }
      String[] status =
          system.executeTransactionally(
              "SHOW DATABASE $name YIELD currentStatus, statusMessage "
                  + "RETURN currentStatus, statusMessage",
              Map.of("name", GraphDatabaseSettings.DEFAULT_DATABASE_NAME),
              result -> {
                if (!result.hasNext()) {
                  return new String[] {"absent", "the database does not exist"};
                }
                Map<String, Object> row = result.next();
                return new String[] {
                  String.valueOf(row.get("currentStatus")), String.valueOf(row.get("statusMessage"))
                };
              });
      if (!"starting".equals(status[0]) && !"online".equals(status[0])) {
        return status[0] + ": " + status[1];
      }
    }
    return "timed out waiting for it to come online";
  }

  /** Sets the password once: only while the built-in user still has to change its default. */
  private static void setInitialPassword(GraphDatabaseService system, String password) {
    boolean mustChange =
        system.executeTransactionally(
            "SHOW USERS YIELD user, passwordChangeRequired WHERE user = 'neo4j' "
                + "RETURN passwordChangeRequired",
            Map.of(),
            result -> result.hasNext() && Boolean.TRUE.equals(result.next().get("passwordChangeRequired")));
    if (mustChange) {
      system.executeTransactionally(
          "ALTER USER neo4j SET PASSWORD $password CHANGE NOT REQUIRED", Map.of("password", password));
    }
  }

  private static boolean isPortClash(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (t instanceof java.net.BindException) {
        return true;
      }
      String msg = String.valueOf(t.getMessage());
      if (msg.contains("Address already in use") || msg.contains("already in use")) {
        return true;
      }
    }
    return false;
  }

  private static String describe(Throwable e) {
    StringBuilder sb = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (sb.length() > 0) {
        sb.append(" <- ");
      }
      sb.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
    }
    return sb.toString().replace('\n', ' ');
  }

  private static void fail(int code, String kind, String message) {
    System.err.println("RINGSCOPE-ERROR " + kind + ": " + message);
    System.err.flush();
    Runtime.getRuntime().halt(code);
  }

  private static Map<String, String> parse(String[] args) {
    Map<String, String> opts = new HashMap<>();
    List<String> list = List.of(args);
    for (int i = 0; i + 1 < list.size(); i += 2) {
      opts.put(list.get(i), list.get(i + 1));
    }
    return opts;
  }

  private static String require(Map<String, String> opts, String key) {
    String value = opts.get(key);
    if (value == null) {
      System.err.println("RINGSCOPE-ERROR args: missing " + key);
      System.exit(2);
    }
    return value;
  }
}
