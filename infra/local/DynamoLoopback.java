import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import software.amazon.dynamodb.services.local.main.CommandLineInput;
import software.amazon.dynamodb.services.local.main.ServerRunner;
import software.amazon.dynamodb.services.local.server.DynamoDBProxyServer;

/**
 * DynamoDB Local bound to loopback only. The jar has no host option: its DynamoDBProxyServer
 * builds `new org.eclipse.jetty.server.Server(port)`, whose connector listens on every
 * interface. This launcher takes the jar's own command line, builds the server the way the
 * jar's main does (ServerRunner.createServerFromCommandLineArgs), sets the host of every Jetty
 * connector to 127.0.0.1 (or -Dslipway.host) before the server starts, then starts it.
 *
 * Telemetry is never configured here, so none is sent whatever the flags say (the jar's main
 * would configure it unless -disableTelemetry). Run by infra/local/dynamodb.ts as a Java
 * single-file program:
 *   java -cp DynamoDBLocal.jar:DynamoDBLocal_lib/* infra/local/DynamoLoopback.java -port N ...
 * or from a class compiled once from this file.
 */
public class DynamoLoopback {
  public static void main(String[] args) throws Exception {
    String host = System.getProperty("slipway.host", "127.0.0.1");
    // -help and bad flags: the jar's own parser prints its usage; nothing is started.
    if (!new CommandLineInput(args).init()) return;
    DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
    Field field = DynamoDBProxyServer.class.getDeclaredField("server");
    field.setAccessible(true);
    Server server = (Server) field.get(proxy);
    int bound = 0;
    for (Connector connector : server.getConnectors()) {
      if (!(connector instanceof ServerConnector)) {
        throw new IllegalStateException("unexpected Jetty connector " + connector.getClass().getName() + "; refusing to start on every interface");
      }
      ((ServerConnector) connector).setHost(host);
      bound++;
    }
    if (bound == 0) throw new IllegalStateException("DynamoDB Local has no Jetty connector to bind to " + host);
    proxy.start();
    System.out.println("DynamoLoopback: listening on " + host + " (" + bound + " connector" + (bound == 1 ? "" : "s") + ")");
  }
}
