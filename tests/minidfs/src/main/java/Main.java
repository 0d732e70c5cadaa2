import java.io.File;
import java.io.InputStream;
import java.nio.file.Files;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * Starts a MiniDFSCluster (one NameNode, one DataNode) on 127.0.0.1 with free ports, prints
 * {@code READY namenode=<rpc port> http=<http port>} on stdout, and shuts down when stdin closes.
 *
 * <p>Argument: the base directory for the cluster's data (wiped by {@code format(true)}); a fresh
 * temporary directory when omitted.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws Exception {
    File base = args.length > 0 ? new File(args[0]) : Files.createTempDirectory("minidfs").toFile();
    Configuration conf = new Configuration();
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.getAbsolutePath());
    conf.set("dfs.replication", "1");
    // Else a non-superuser client cannot write under "/".
    conf.set("dfs.permissions.enabled", "false");
    conf.set("dfs.webhdfs.enabled", "true");
    conf.set("dfs.namenode.rpc-bind-host", "127.0.0.1");
    conf.set("dfs.namenode.http-bind-host", "127.0.0.1");
    conf.set("dfs.datanode.address", "127.0.0.1:0");
    conf.set("dfs.datanode.http.address", "127.0.0.1:0");
    conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");

    MiniDFSCluster cluster =
        new MiniDFSCluster.Builder(conf)
            .nameNodePort(0)
            .nameNodeHttpPort(0)
            .numDataNodes(1)
            .format(true)
            .build();
    // SIGTERM: shut down from the hook. Stdin EOF: shut down here first (a shutdown inside the JVM's own
    // shutdown logs "Shutdown in progress" errors from the DataNode's threads).
    AtomicBoolean stopped = new AtomicBoolean(false);
    Runtime.getRuntime()
        .addShutdownHook(
            new Thread(
                () -> {
                  if (stopped.compareAndSet(false, true)) {
                    cluster.shutdown();
                  }
                }));
    cluster.waitActive();
    int rpc = cluster.getNameNodePort();
    int http = cluster.getNameNode().getHttpAddress().getPort();
    System.out.println("READY namenode=" + rpc + " http=" + http);
    System.out.flush();

    // The harness holds our stdin open for as long as it needs the cluster; EOF (its exit) stops us.
    InputStream in = System.in;
    byte[] buf = new byte[256];
    while (in.read(buf) >= 0) {
      // ignore input
    }
    if (stopped.compareAndSet(false, true)) {
      cluster.shutdown();
    }
    System.exit(0);
  }
}
